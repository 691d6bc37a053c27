"""In-the-Wild (Müller et al., Interspeech 2022, "Does audio deepfake detection generalize?").

Layout (the release ``release_in_the_wild``, https://deepfake-total.com/in_the_wild): ``meta.csv`` with the
header ``file,speaker,label``, label ``bona-fide`` or ``spoof``, the audio files (``0.wav`` ...) beside it.
PATH may be the release folder or the folder holding ``release_in_the_wild``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from antispoof.evalsets.base import EvalSet, first_existing
from antispoof.protocols import ProtocolError, Trial

LABELS = {"bona-fide": "bonafide", "spoof": "spoof"}
HEADER = ("file", "speaker", "label")


def read_in_the_wild(root: Path) -> EvalSet:
    """In-the-Wild: 58 celebrities and politicians, bona fide and spoofed; EER (no attribute beyond speaker)."""
    meta = first_existing(root, ("meta.csv", "release_in_the_wild/meta.csv"), "In-the-Wild meta.csv")
    with meta.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        raise ProtocolError(
            f"{meta}:1: expected the header {','.join(HEADER)}, got {','.join(rows[0]) if rows else 'nothing'}"
        )
    trials = []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 3:
            raise ProtocolError(f"{meta}:{number}: expected 3 fields (file,speaker,label), got {len(row)}")
        file, speaker, label = (c.strip() for c in row)
        if label not in LABELS:
            raise ProtocolError(f"{meta}:{number}: label {label!r} is not bona-fide or spoof")
        key = LABELS[label]
        trials.append(
            Trial(Path(file).stem, speaker, "-" if key == "bonafide" else "spoof", key, meta.parent / file)
        )
    if not trials:
        raise ProtocolError(f"{meta}: no trials")
    return EvalSet("ITW", trials)
