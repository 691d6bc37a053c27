"""The data module users know: audio loading, protocols (ASVspoof 2019 LA, DSES) and datasets.

The code lives in the ``antispoof`` package; this module re-exports its public names so that
``from data_utils import load_audio, asvspoof_trials, scan_dses`` keeps working.
"""

from antispoof.data import *  # noqa: F401,F403
from antispoof.data import __all__  # noqa: F401
