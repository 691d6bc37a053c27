"""The small interface every DSES back-end implements, and the helpers they share.

A back-end turns (text, speaker, emotion) into a mono float32 waveform at its own `sample_rate`;
`DSES/synthesize.py` resamples to 16 kHz, writes FLAC and keeps the manifest. Back-ends never write files.
"""

from __future__ import annotations

import random
import re
import sys
import zlib

import numpy as np


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from the given parts that does not depend on Python's hash randomisation."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8")) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) torch, so that sampling TTS models repeat a rendering."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")  # only if a back-end uses it: importing torch costs seconds
    if torch is not None:
        torch.manual_seed(seed)


def to_mono_float32(audio, where: str) -> np.ndarray:
    """A back-end's output (numpy or torch, (T,), (1, T), (C, T) or (1, 1, T)) as a 1-D float32 array.

    Channels are averaged: every TTS used here is mono, so a second axis larger than one means
    several channels of the same signal. Raises a clear error for empty or non-finite audio.
    """
    if hasattr(audio, "detach"):  # torch tensor, possibly bfloat16 or on a GPU
        audio = audio.detach().float().cpu().numpy()
    array = np.asarray(audio, dtype=np.float32)
    array = np.squeeze(array)
    if array.ndim == 2:
        # (C, T) with few channels, or (T, C) as soundfile returns it
        array = array.mean(axis=0) if array.shape[0] < array.shape[1] else array.mean(axis=1)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{where}: expected a mono waveform, got an array of shape {np.shape(audio)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: the waveform contains NaN or infinite samples")
    return array


def missing_package_error(backend: str, package: str, install: str) -> ImportError:
    """The error a GPU back-end raises when its TTS package is not importable."""
    return ImportError(
        f"the '{backend}' back-end needs the {package} package, which is not importable here. "
        f"Install it with: {install}"
    )


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_name(kind: str, value: str) -> str:
    """Speaker, emotion, system and utterance names become folder and file names: keep them plain."""
    value = str(value)
    if not _SAFE_NAME.match(value) or value.endswith(".partial"):
        raise ValueError(
            f"{kind} {value!r} is not usable as a file name: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return value


class Backend:
    """Base class of the DSES back-ends.

    Attributes:
        name: registry name (`--backend NAME`).
        system: the default system folder name in the DSES layout (`<System>/<speaker>/<emotion>/<id>.flac`).
        sample_rate: rate of the arrays `synthesize` returns.
        reference: what `reference_audio` means for this back-end: None (unused), "speaker" (a few seconds
            of the speaker's bona fide speech: voice cloning / prompt speech) or "utterance" (the bona fide
            utterance itself: copy synthesis).
    """

    name = "base"
    system = "Base"
    sample_rate = 16000
    reference: str | None = None
    default_speakers: tuple[str, ...] = ()

    def synthesize(
        self,
        text: str,
        speaker: str,
        emotion: str,
        reference_audio: np.ndarray | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Render `text` as `speaker` in `emotion` (one of EMOTIONS).

        `reference_audio` is float32 mono at 16 kHz (see `reference`). Returns float32 mono at `sample_rate`.
        """
        raise NotImplementedError

    def settings(self) -> dict:
        """JSON-serialisable settings that, with the seed, determine the output (stored in the manifest)."""
        return {}

    def item_settings(self, speaker: str, emotion: str) -> dict:
        """Settings specific to one speaker and emotion (e.g. the voice and prosody used), merged into
        `settings()` in the manifest row."""
        return {}
