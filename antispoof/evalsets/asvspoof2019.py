"""ASVspoof 2019 LA eval (the existing reader, :func:`antispoof.protocols.asvspoof_trials`): protocol
``ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.eval.trl.txt``, audio ``ASVspoof2019_LA_eval/flac``."""

from __future__ import annotations

from pathlib import Path

from antispoof.evalsets.base import EvalSet
from antispoof.protocols import asvspoof_trials


def read_la2019(root: Path) -> EvalSet:
    """ASVspoof 2019 LA eval: attribute attack (system); EER (its t-DCF stays with ``main.py --eval``)."""
    return EvalSet("LA19", asvspoof_trials(root, "eval"), ("system",))
