"""The framework's library: audio, protocols, scoring, training, metrics and reports.

The top-level scripts (``main.py``, ``inference.py``, ``evaluation.py``, ``download_dataset.py``,
``download_weights.py``, ``demo.py``) parse arguments and call into this package; nothing here imports them.
Detectors live in the sibling ``models`` package, chosen by name from a JSON config.
"""
