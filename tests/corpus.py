"""Tiny corpora written by tests: the ASVspoof 2019 LA layout and the DSES layout, with generated audio.

Bona fide stand-ins are harmonic "voiced" tones with a vibrato; spoof stand-ins add broadband noise, so that a
detector has something to learn in one epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000

# the model configs tests train and score: AASIST-L's shape at 1 s crops, and a smaller AASIST at 0.5 s
AASIST_L_TINY = {
    "architecture": "AASIST",
    "nb_samp": 16000,
    "first_conv": 128,
    "filts": [70, [1, 32], [32, 32], [32, 24], [24, 24]],
    "gat_dims": [24, 32],
    "pool_ratios": [0.4, 0.5, 0.7, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}
TINY_AASIST = {
    "architecture": "AASIST",
    "nb_samp": 8000,
    "first_conv": 128,
    "filts": [20, [1, 8], [8, 8], [8, 8], [8, 8]],
    "gat_dims": [8, 8],
    "pool_ratios": [0.5, 0.5, 0.5, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}


def voice(rng: np.random.Generator, seconds: float, spoof: bool) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = rng.uniform(100, 220) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    if spoof:
        x = x + rng.normal(0, 0.8, len(t))
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


SPLITS = {
    "train": ("ASVspoof2019.LA.cm.train.trn.txt", "ASVspoof2019_LA_train", "T", ["A01", "A02"]),
    "dev": ("ASVspoof2019.LA.cm.dev.trl.txt", "ASVspoof2019_LA_dev", "D", ["A01", "A02"]),
    "eval": ("ASVspoof2019.LA.cm.eval.trl.txt", "ASVspoof2019_LA_eval", "E", ["A07", "A08"]),
}


def write_asvspoof_la(root: Path, n_per_class: int = 4, seconds: float = 1.0, seed: int = 0) -> Path:
    """An ASVspoof 2019 LA tree under ``root/LA`` with protocols, flac files and ASV score files."""
    rng = np.random.default_rng(seed)
    database = root / "LA"
    protocols = database / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    asv_dir = database / "ASVspoof2019_LA_asv_scores"
    asv_dir.mkdir()
    for split, (protocol_name, audio_dir, letter, attacks) in SPLITS.items():
        flac = database / audio_dir / "flac"
        flac.mkdir(parents=True)
        lines = []
        for i in range(2 * n_per_class):
            spoof = i % 2 == 1
            utt = f"LA_{letter}_{1000000 + i}"
            system = attacks[(i // 2) % len(attacks)] if spoof else "-"
            lines.append(f"LA_{i % 3:04d} {utt} - {system} {'spoof' if spoof else 'bonafide'}")
            sf.write(flac / f"{utt}.flac", voice(rng, seconds * rng.uniform(0.7, 1.3), spoof), SR)
        (protocols / protocol_name).write_text("\n".join(lines) + "\n")
        if split != "train":
            asv = [f"bonafide target {rng.normal(8, 2):.6f}" for _ in range(20)]
            asv += [f"bonafide nontarget {rng.normal(-4, 2):.6f}" for _ in range(20)]
            asv += [f"{a} spoof {rng.normal(2, 3):.6f}" for a in attacks for _ in range(10)]
            name = f"ASVspoof2019.LA.asv.{split}.gi.trl.scores.txt"
            (asv_dir / name).write_text("\n".join(asv) + "\n")
    return database


DSES_LAYOUT = {
    "ESD": ["Neutral", "Happy", "Angry", "Sad", "Surprise"],
    "Zonos": ["neutral", "happy", "angry", "sad", "surprised"],
    "CosyVoice": ["NEUTRAL", "Happiness", "anger", "Sadness", "surprise"],
}


def write_dses(root: Path, speakers=("0011", "0012", "0013"), per_folder: int = 2, seed: int = 1) -> Path:
    """A DSES tree: ESD (bona fide) and two spoof systems, five emotions spelled the ways met in the wild."""
    rng = np.random.default_rng(seed)
    for system, emotions in DSES_LAYOUT.items():
        for speaker in speakers:
            for emotion in emotions:
                folder = root / system / speaker / emotion
                folder.mkdir(parents=True)
                for i in range(per_folder):
                    x = voice(rng, rng.uniform(0.6, 1.2), spoof=system != "ESD")
                    sf.write(folder / f"{speaker}_{emotion.lower()}_{i}.wav", x, SR)
    return root
