"""DSES back-ends, each imported only when chosen.

from DSES.backends import get_backend
backend = get_backend("espeak")                       # offline, no GPU
backend = get_backend("vocoder", n_fft=1024, n_mels=40)  # copy synthesis with other settings
"""

from __future__ import annotations

import difflib
import importlib
import inspect

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
    """Build the back-end `name` with its keyword options (e.g. n_fft=1024 for the vocoder); an option the
    back-end does not take is a ValueError naming it, the closest known one and all of them."""
    cls = backend_class(name)
    known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for option in options:
        if option not in known:
            close = difflib.get_close_matches(option, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"the {name!r} back-end has no option {option!r}{hint}; its options: {', '.join(known) or 'none'}"
            )
    return cls(**options)


__all__ = ["BACKENDS", "EMOTIONS", "Backend", "backend_class", "get_backend", "require_emotion"]
