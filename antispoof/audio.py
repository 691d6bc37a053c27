"""The one audio loader: any format soundfile reads, any channels, any rate -> mono float32 at 16 kHz.

Training takes a random ``nb_samp`` crop; evaluation and inference take the first ``nb_samp`` samples; short
files are tile-padded (AASIST's padding). A file scored by ``inference.py`` gets exactly the score it gets in
``main.py --eval``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from antispoof.errors import first_line

SAMPLE_RATE = 16_000
NB_SAMP = 64_600  # 4.04 s, as in AASIST
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg")


class AudioError(ValueError):
    """An audio file cannot be used: unreadable, empty or not finite."""


def load_audio(path: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``target_sr`` (mean of channels; soxr high-quality resampling)."""
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (
        Exception
    ) as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError... depending on version
        reason = first_line(exc)
        raise AudioError(f"{path}: cannot read audio ({reason})") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != target_sr:
        mono = soxr.resample(mono, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
        if mono.shape[0] == 0:
            raise AudioError(f"{path}: too short to resample from {sr} Hz")
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def tile_pad(x: np.ndarray, nb_samp: int) -> np.ndarray:
    """Repeat a short waveform until it is ``nb_samp`` long (AASIST's padding)."""
    repeats = nb_samp // len(x) + 1
    return np.tile(x, repeats)[:nb_samp]


def crop_or_pad(x: np.ndarray, nb_samp: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Evaluation (``rng`` None): first ``nb_samp`` samples. Training: a random crop. Short files: tile-padded."""
    if len(x) < nb_samp:
        return tile_pad(x, nb_samp)
    if rng is None or len(x) == nb_samp:
        return x[:nb_samp]
    start = int(rng.integers(0, len(x) - nb_samp + 1))
    return x[start : start + nb_samp]


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every flac/wav/ogg below ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
