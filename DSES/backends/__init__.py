"""DSES back-ends, each imported only when chosen.

from DSES.backends import get_backend
backend = get_backend("espeak")                       # offline, no GPU
backend = get_backend("vocoder", n_fft=1024, n_mels=40)  # copy synthesis with other settings
"""

from __future__ import annotations

import importlib

from antispoof.emotions import EMOTIONS, require_emotion
from DSES.backends.base import Backend

# name -> (module under DSES.backends, class name). The module is imported on first use only, so that
# choosing `espeak` never imports Zonos, CosyVoice or EmoSpeech.
BACKENDS = {
    "zonos": ("zonos_backend", "ZonosBackend"),
    "cosyvoice": ("cosyvoice_backend", "CosyVoiceBackend"),
    "emospeech": ("emospeech_backend", "EmoSpeechBackend"),
    "espeak": ("espeak", "EspeakBackend"),
    "vocoder": ("vocoder", "VocoderBackend"),
}


def backend_class(name: str) -> type[Backend]:
    """The back-end class registered under `name`."""
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown back-end {name!r}: choose one of {', '.join(sorted(BACKENDS))}")
    module_name, class_name = BACKENDS[key]
    module = importlib.import_module(f"DSES.backends.{module_name}")
    return getattr(module, class_name)


def get_backend(name: str, **options) -> Backend:
    """Build the back-end `name` with its keyword options (e.g. n_fft=1024 for the vocoder)."""
    return backend_class(name)(**options)


__all__ = ["BACKENDS", "EMOTIONS", "Backend", "backend_class", "get_backend", "require_emotion"]
