"""The one audio loader: any format soundfile reads, any channels, any rate -> mono float32 at 16 kHz.

Training takes a random ``nb_samp`` crop; evaluation and inference take the first ``nb_samp`` samples; short
files are tile-padded (AASIST's padding). A file scored by ``inference.py`` gets exactly the score it gets in
``main.py --eval``.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from antispoof.errors import first_line

SAMPLE_RATE = 16_000
NB_SAMP = 64_600  # 4.04 s, as in AASIST
# The one list of audio extensions (inference.py, DSES scanning, DSES/synthesize.py): libsndfile reads each of
# these by its header. mp3 needs soundfile >= 0.12 with libsndfile >= 1.1 (see ``mp3_supported``).
AUDIO_EXTENSIONS = (
    ".flac",
    ".wav",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".aifc",
    ".au",
    ".snd",
    ".caf",
    ".w64",
    ".rf64",
)
# Audio that libsndfile cannot decode: listed with the ffmpeg command that converts it, never silently skipped.
CONVERT_WITH_FFMPEG_EXTENSIONS = (
    ".m4a",
    ".m4b",
    ".aac",
    ".wma",
    ".mp4",
    ".webm",
    ".amr",
    ".3gp",
    ".ac3",
    ".mka",
    ".ape",
    ".wv",
)


class AudioError(ValueError):
    """An audio file cannot be used: unreadable, empty or not finite."""


def load_audio(path: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``target_sr`` (mean of channels; soxr high-quality resampling)."""
    try:
        audio, sr = sf.read(_soundfile_name(path), dtype="float32", always_2d=True)
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


def _soundfile_name(path: str | os.PathLike) -> str | bytes:
    """``path`` as soundfile can open it: a name holding bytes that are not UTF-8 goes as bytes (soundfile would
    fail to encode the str); any other name as str, which keeps its error messages readable."""
    name = os.fspath(path)
    if isinstance(name, bytes):
        return name
    try:
        name.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


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


def mp3_supported() -> bool:
    """Whether this libsndfile decodes mp3 (libsndfile >= 1.1, soundfile >= 0.12)."""
    return "MP3" in sf.available_formats()


def ffmpeg_hint(path: str | os.PathLike) -> str:
    """The command that makes ``path`` readable: 16 kHz wav beside it."""
    path = Path(path)
    source, converted = shlex.quote(str(path)), shlex.quote(str(path.with_suffix(".wav")))
    return f"convert with ffmpeg (ffmpeg -i {source} -ar 16000 {converted})"


def unsupported_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read, judged by its extension alone; None when it may be."""
    suffix = Path(path).suffix.lower()
    if suffix in CONVERT_WITH_FFMPEG_EXTENSIONS:
        return f"not supported: {ffmpeg_hint(path)}"
    if suffix == ".mp3" and not mp3_supported():
        version = getattr(sf, "__libsndfile_version__", "unknown")
        return f"mp3 needs libsndfile >= 1.1 and soundfile >= 0.12 (this is libsndfile {version}): {ffmpeg_hint(path)}"
    return None


@dataclass(frozen=True)
class AudioInput:
    """One file to score: its path, the name it is reported under, and why it cannot be scored (None: it may)."""

    path: Path
    name: str
    problem: str | None = None


def collect_audio_inputs(target: str | os.PathLike) -> list[AudioInput]:
    """Every audio file below a folder (recursive), or the one file named, sorted by name, each exactly once.

    Names are relative to the folder (a single file: its own name). A file with an audio extension that cannot
    be read as such (an ffmpeg-only format, mp3 without libsndfile support, a broken link, a fifo) comes back with
    its ``problem``; a single file is always tried whatever its extension. A missing ``target`` raises
    ``FileNotFoundError``.
    """
    target = Path(target)
    if target.is_dir():
        found = (
            _audio_input(path, path.relative_to(target).as_posix()) for path in _audio_candidates(target)
        )
        return sorted((item for item in found if item is not None), key=lambda item: item.name)
    if target.exists() or target.is_symlink():
        return [_audio_input(target, target.name)]
    raise FileNotFoundError(f"{target}: no such file or folder")


def _audio_candidates(folder: Path):
    extensions = AUDIO_EXTENSIONS + CONVERT_WITH_FFMPEG_EXTENSIONS
    return (path for path in folder.rglob("*") if path.suffix.lower() in extensions)


def _audio_input(path: Path, name: str) -> AudioInput | None:
    if path.is_symlink() and not path.exists():
        return AudioInput(path, name, f"broken link (points to {os.readlink(path)})")
    if path.is_dir():  # a folder named like audio: its files are found by the walk
        return None
    if not path.is_file():
        return AudioInput(path, name, "not a regular file")
    return AudioInput(path, name, unsupported_reason(path))


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every readable-looking audio file below ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return [item.path for item in collect_audio_inputs(folder) if item.problem is None]
