"""The emotion vocabulary of the project: DSES's five emotions and the spellings met in the wild.

Kept free of heavy imports (no torch) so that the data code, the DSES synthesis pipeline and its back-ends share
one definition.
"""

from __future__ import annotations

import re

EMOTIONS = ("neutral", "happy", "angry", "sad", "surprise")

# folder and label spellings met in ESD ("Surprise"), the DSES release, TTS notebooks ("surprised") and corpora;
# matched case-insensitively, ignoring anything but letters
_SPELLINGS = {
    "neutral": "neutral",
    "neu": "neutral",
    "calm": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "angry": "angry",
    "anger": "angry",
    "ang": "angry",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "suprise": "surprise",
    "sur": "surprise",
}


def normalize_emotion(name: str) -> str | None:
    """Map an emotion folder name or label in any common spelling to one of EMOTIONS (None if unknown)."""
    return _SPELLINGS.get(re.sub(r"[^a-z]", "", str(name).lower()))


def require_emotion(label: str) -> str:
    """:func:`normalize_emotion` for labels that must be known: an unknown one is a ``ValueError`` naming it."""
    emotion = normalize_emotion(label)
    if emotion is None:
        raise ValueError(f"unknown emotion {label!r}: expected one of {', '.join(EMOTIONS)}")
    return emotion
