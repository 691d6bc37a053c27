"""Audio loading, protocols (ASVspoof 2019 LA and DSES) and datasets.

One preprocessing path for every entry point: ``load_audio`` (any format soundfile reads, any channel count,
any sample rate) -> mono float32 at 16 kHz -> crop or tile-pad to ``nb_samp`` samples. Training takes a random
crop; evaluation and inference take the first ``nb_samp`` samples, so a file scored by ``inference.py`` gets
exactly the score it gets in ``main.py --eval``.

Labels: bona fide = 1, spoof = 0.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from emotions import EMOTIONS, normalize_emotion
from evaluation import read_asvspoof_protocol
from fileio import atomic_open

SAMPLE_RATE = 16_000
NB_SAMP = 64_600  # 4.04 s, as in AASIST
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg")
BONAFIDE, SPOOF = 1, 0

BONAFIDE_SYSTEM_DIR = "ESD"
# DSES: bona fide speech lives in ESD/<speaker>/<emotion>/; protocols, manifests and notes are not reported as odd
METADATA_SUFFIXES = (".csv", ".tsv", ".txt", ".md", ".json")


class AudioError(ValueError):
    """An audio file cannot be used: unreadable, empty or not finite."""


class ProtocolError(ValueError):
    """A protocol or dataset layout is malformed or incomplete."""


# ----------------------------------------------------------------------------------------------------
# audio
# ----------------------------------------------------------------------------------------------------
def load_audio(path: str | os.PathLike, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``target_sr`` (mean of channels; soxr high-quality resampling)."""
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (
        Exception
    ) as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError... depending on version
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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


# ----------------------------------------------------------------------------------------------------
# protocols
# ----------------------------------------------------------------------------------------------------
@dataclass
class Trial:
    """One protocol line with its audio path. ``system`` is '-' for bona fide (ASVspoof) or the TTS system."""

    utt_id: str
    speaker: str
    system: str
    key: str  # "bonafide" | "spoof"
    path: Path
    emotion: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> int:
        return BONAFIDE if self.key == "bonafide" else SPOOF


ASVSPOOF_SPLITS = {
    "train": ("ASVspoof2019.LA.cm.train.trn.txt", "ASVspoof2019_LA_train"),
    "dev": ("ASVspoof2019.LA.cm.dev.trl.txt", "ASVspoof2019_LA_dev"),
    "eval": ("ASVspoof2019.LA.cm.eval.trl.txt", "ASVspoof2019_LA_eval"),
}
ASVSPOOF_PROTOCOL_DIR = "ASVspoof2019_LA_cm_protocols"


def asvspoof_protocol_path(database_path: str | os.PathLike, split: str) -> Path:
    return Path(database_path) / ASVSPOOF_PROTOCOL_DIR / ASVSPOOF_SPLITS[split][0]


def asvspoof_trials(
    database_path: str | os.PathLike, split: str, protocol_path: str | None = None
) -> list[Trial]:
    """Trials of an ASVspoof 2019 LA split; audio at ``<db>/ASVspoof2019_LA_<split>/flac/<UTT_ID>.flac``."""
    if split not in ASVSPOOF_SPLITS:
        raise ValueError(
            f"unknown ASVspoof 2019 LA split {split!r}; expected one of {sorted(ASVSPOOF_SPLITS)}"
        )
    protocol = Path(protocol_path) if protocol_path else asvspoof_protocol_path(database_path, split)
    if not protocol.is_file():
        raise ProtocolError(f"{protocol}: protocol file not found (is database_path right? see README)")
    audio_dir = Path(database_path) / ASVSPOOF_SPLITS[split][1] / "flac"
    return [
        Trial(utt_id=utt, speaker=spk, system=system, key=key, path=audio_dir / f"{utt}.flac")
        for spk, utt, system, key in read_asvspoof_protocol(protocol)
    ]


def check_audio_exists(trials: Sequence[Trial], what: str) -> None:
    """Fail before a run starts if any listed audio is missing: one error with the count and the first few."""
    missing = [t.path for t in trials if not t.path.is_file()]
    if missing:
        first = ", ".join(str(p) for p in missing[:5])
        raise ProtocolError(
            f"{what}: {len(missing)} of {len(trials)} audio files are missing (first: {first})"
        )


def check_asvspoof_layout(
    database_path: str | os.PathLike, splits: Sequence[str] = ("train", "dev", "eval")
) -> str:
    """Check that protocols and every listed flac exist; returns a one-line summary per split."""
    lines = []
    for split in splits:
        trials = asvspoof_trials(database_path, split)
        check_audio_exists(
            trials, f"ASVspoof 2019 LA {split} ({asvspoof_protocol_path(database_path, split)})"
        )
        n_bona = sum(t.key == "bonafide" for t in trials)
        lines.append(f"{split}: {len(trials)} trials ({n_bona} bona fide), all audio present")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# DSES: Dataset of Synthesized Emotional Speech
# ----------------------------------------------------------------------------------------------------
@dataclass
class DSESScanReport:
    systems: Counter = field(default_factory=Counter)
    emotions: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # folders/files ignored, relative to the root

    def summary(self) -> str:
        systems = ", ".join(f"{s} {n}" for s, n in sorted(self.systems.items()))
        emotions = ", ".join(f"{e} {self.emotions[e]}" for e in EMOTIONS if self.emotions[e])
        text = f"DSES: {sum(self.systems.values())} files; systems: {systems}; emotions: {emotions}"
        if self.unexpected:
            shown = ", ".join(self.unexpected[:5])
            text += f"; ignored {len(self.unexpected)} unexpected entries (first: {shown})"
        return text


def scan_dses(root: str | os.PathLike) -> tuple[list[Trial], DSESScanReport]:
    """Scan a DSES root: ``ESD/<speaker>/<emotion>/**/audio`` (bona fide) and ``<System>/<speaker>/<emotion>/**``.

    Any top-level folder of that shape is a spoof system. Emotion folders are normalised; files below an emotion
    folder are found recursively (ESD keeps train/test/evaluation subfolders). Utterance ids are the path relative
    to the root without extension, so they are unique across systems. Unexpected entries are reported, not used.
    """
    root = Path(root)
    if not root.is_dir():
        raise ProtocolError(f"{root}: DSES root folder not found (set emo_dataset in the config)")
    trials: list[Trial] = []
    report = DSESScanReport()
    for system_dir in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not system_dir.is_dir():
            if system_dir.suffix.lower() not in METADATA_SUFFIXES:
                report.unexpected.append(system_dir.name)
            continue
        system = system_dir.name
        key = "bonafide" if system.upper() == BONAFIDE_SYSTEM_DIR else "spoof"
        for speaker_dir in sorted(p for p in system_dir.iterdir() if not p.name.startswith(".")):
            if not speaker_dir.is_dir():
                if speaker_dir.suffix.lower() not in METADATA_SUFFIXES:  # e.g. a system's manifest.csv
                    report.unexpected.append(str(speaker_dir.relative_to(root)))
                continue
            for emotion_dir in sorted(p for p in speaker_dir.iterdir() if not p.name.startswith(".")):
                emotion = normalize_emotion(emotion_dir.name) if emotion_dir.is_dir() else None
                if emotion is None:
                    report.unexpected.append(str(emotion_dir.relative_to(root)))
                    continue
                for path in sorted(emotion_dir.rglob("*")):
                    if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
                        continue
                    trials.append(
                        Trial(
                            utt_id=path.relative_to(root).with_suffix("").as_posix(),
                            speaker=speaker_dir.name,
                            system="-" if key == "bonafide" else system,
                            key=key,
                            path=path,
                            emotion=emotion,
                        )
                    )
                    report.systems[system] += 1
                    report.emotions[emotion] += 1
    if not trials:
        raise ProtocolError(f"{root}: no audio found in the DSES layout <System>/<speaker>/<emotion>/<file>")
    if not any(t.key == "bonafide" for t in trials):
        raise ProtocolError(
            f"{root}: no bona fide audio (expected a folder {BONAFIDE_SYSTEM_DIR}/<speaker>/<emotion>/)"
        )
    return trials, report


DSES_PROTOCOL_FIELDS = ("utt_id", "speaker", "emotion", "system", "key", "path")


def write_dses_protocol(trials: Sequence[Trial], path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Write the scanned DSES protocol (TSV with a header; audio paths relative to ``root``), atomically."""
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(DSES_PROTOCOL_FIELDS)
        for t in trials:
            rel = os.path.relpath(t.path, root)
            writer.writerow((t.utt_id, t.speaker, t.emotion, t.system, t.key, Path(rel).as_posix()))


def read_dses_protocol(path: str | os.PathLike, root: str | os.PathLike) -> list[Trial]:
    path, root = Path(path), Path(root)
    trials = []
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header) != DSES_PROTOCOL_FIELDS:
            raise ProtocolError(
                f"{path}: not a DSES protocol (header must be {' '.join(DSES_PROTOCOL_FIELDS)})"
            )
        for lineno, row in enumerate(reader, start=2):
            if len(row) != len(DSES_PROTOCOL_FIELDS):
                raise ProtocolError(
                    f"{path}:{lineno}: expected {len(DSES_PROTOCOL_FIELDS)} fields, got {len(row)}"
                )
            utt, spk, emotion, system, key, rel = row
            if key not in ("bonafide", "spoof") or emotion not in EMOTIONS:
                raise ProtocolError(f"{path}:{lineno}: bad key {key!r} or emotion {emotion!r}")
            trials.append(Trial(utt, spk, system, key, root / rel, emotion=emotion))
    return trials


# ----------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------
class TrainDataset(Dataset):
    """Random ``nb_samp`` crops (tile-padded when short) with their labels; optional waveform augmentation.

    Randomness comes from a per-item generator seeded by (seed, epoch, index), so runs repeat exactly whatever
    the number of DataLoader workers; call ``set_epoch`` once per epoch.
    """

    def __init__(
        self,
        trials: Sequence[Trial],
        nb_samp: int = NB_SAMP,
        seed: int = 0,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        label_of: Callable[[Trial], int] | None = None,
    ):
        self.trials = list(trials)
        self.nb_samp = nb_samp
        self.seed = seed
        self.epoch = 0
        self.augment = augment
        self.label_of = label_of or (lambda t: t.label)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int):
        trial = self.trials[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        x = crop_or_pad(load_audio(trial.path), self.nb_samp, rng)
        if self.augment is not None:
            x = np.asarray(self.augment(x, rng), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(x)), self.label_of(trial)


class ScoringDataset(Dataset):
    """First ``nb_samp`` samples of each file (tile-padded), for evaluation and inference.

    With ``skip_unreadable`` an unreadable file yields ``(None, index, message)`` instead of raising, so one bad
    file in a folder does not stop the rest from being scored; ``collate_scoring`` sets it aside.
    """

    def __init__(
        self, paths: Sequence[str | os.PathLike], nb_samp: int = NB_SAMP, skip_unreadable: bool = False
    ):
        self.paths = list(paths)
        self.nb_samp = nb_samp
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            x = crop_or_pad(load_audio(self.paths[index]), self.nb_samp)
        except AudioError as exc:
            if not self.skip_unreadable:
                raise
            return None, index, str(exc)
        return torch.from_numpy(np.ascontiguousarray(x)), index, None


def collate_scoring(batch):
    """Stack the readable items; return (waveforms or None, their indices, [(index, error), ...])."""
    good = [(x, i) for x, i, _ in batch if x is not None]
    errors = [(i, err) for x, i, err in batch if x is None]
    if not good:
        return None, torch.empty(0, dtype=torch.long), errors
    waves = torch.stack([x for x, _ in good])
    return waves, torch.tensor([i for _, i in good], dtype=torch.long), errors


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every flac/wav/ogg below ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
