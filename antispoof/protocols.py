"""Trials and protocols: ASVspoof 2019 LA (``SPEAKER UTT_ID - SYSTEM KEY``) and the DSES folder layout.

Labels: bona fide = 1, spoof = 0.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from antispoof.audio import AUDIO_EXTENSIONS
from antispoof.emotions import EMOTIONS, normalize_emotion
from antispoof.fileio import atomic_open
from antispoof.scorefiles import read_asvspoof_protocol

BONAFIDE, SPOOF = 1, 0

BONAFIDE_SYSTEM_DIR = "ESD"
# DSES: bona fide speech lives in ESD/<speaker>/<emotion>/; protocols, manifests and notes are not reported as odd
METADATA_SUFFIXES = (".csv", ".tsv", ".txt", ".md", ".json")


class ProtocolError(ValueError):
    """A protocol or dataset layout is malformed or incomplete."""


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
        raise ProtocolError(
            f"{protocol}: protocol file not found: is database_path right? (python download_dataset.py --dataset LA fetches the data)"
        )
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
        trials += scan_dses_system(root, system_dir, report)
    if not trials:
        raise ProtocolError(f"{root}: no audio found in the DSES layout <System>/<speaker>/<emotion>/<file>")
    if not any(t.key == "bonafide" for t in trials):
        raise ProtocolError(
            f"{root}: no bona fide audio (expected a folder {BONAFIDE_SYSTEM_DIR}/<speaker>/<emotion>/)"
        )
    return trials, report


def scan_dses_system(root: Path, system_dir: Path, report: DSESScanReport) -> list[Trial]:
    """One top-level folder of a DSES root, ``<System>/<speaker>/<emotion>/**/audio`` (``ESD``: bona fide)."""
    system = system_dir.name
    key = "bonafide" if system.upper() == BONAFIDE_SYSTEM_DIR else "spoof"
    trials: list[Trial] = []
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
    return trials


DSES_PROTOCOL_FIELDS = ("utt_id", "speaker", "emotion", "system", "key", "path")


def write_dses_protocol(trials: Sequence[Trial], path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Write the scanned DSES protocol (TSV with a header; audio paths relative to ``root``), atomically."""
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(DSES_PROTOCOL_FIELDS)
        for t in trials:
            rel = os.path.relpath(t.path, root)
            writer.writerow((t.utt_id, t.speaker, t.emotion, t.system, t.key, Path(rel).as_posix()))
