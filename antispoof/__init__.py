"""The framework's library: audio, protocols, scoring, training, metrics and reports.

The top-level scripts (``main.py``, ``inference.py``, ``evaluation.py``, ``download_dataset.py``,
``download_weights.py``, ``demo.py``) parse arguments and call into this package; nothing here imports them.
Detectors live in the sibling ``models`` package, chosen by name from a JSON config.
"""

import os

# CPU scoring and training run thousands of short OpenMP parallel regions. By default the idle threads of a team
# spin (libgomp: 300,000 rounds) before sleeping; when other processes compete for the cores, a spinning thread
# burns the time slice its team-mate needs to finish the region: AASIST scoring on 2 busy cores ran 3-10x slower
# than with passive waiting (bench/aasist_cpu.py, README "AASIST"). OpenMP reads this once, when torch loads it,
# so it is set here: the scripts import this package before anything imports torch. An OMP_WAIT_POLICY already in
# the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
