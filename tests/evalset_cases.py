"""Miniature eval-set layouts written by tests: ASVspoof 2021 LA and DF (keys in the eval-package layout, flac
audio), In-the-Wild (meta.csv + wav), EmoSpoof-TTS (+ ESD) and EmoFake (label.txt + wav/), with generated audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from corpus import SR, voice

LA_CODECS = ("none", "alaw", "pstn", "g722", "ulaw", "gsm", "opus")
LA_TRANSMISSIONS = ("loc_tx", "ita_tx", "sin_tx", "mad_tx")


def _audio(path: Path, rng, spoof: bool, seconds: float = 0.4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, voice(rng, seconds, spoof), SR)


def la2021_lines(n_bonafide: int = 8, n_spoof: int = 16, with_progress: int = 2) -> list[str]:
    """Real-format LA CM key lines: SPK TRIAL CODEC TRANSMISSION ATTACK KEY TRIM SUBSET."""
    lines = []
    for i in range(n_bonafide + n_spoof + with_progress):
        spoof = n_bonafide <= i < n_bonafide + n_spoof or (i >= n_bonafide + n_spoof and i % 2 == 1)
        attack = f"A{7 + i % 3:02d}" if spoof else "bonafide"
        subset = "eval" if i < n_bonafide + n_spoof else "progress"
        codec, tx = LA_CODECS[i % 3], LA_TRANSMISSIONS[i % 2]
        key = "spoof" if spoof else "bonafide"
        lines.append(f"LA_{i % 4:04d} LA_E_{1000000 + i} {codec} {tx} {attack} {key} notrim {subset}")
    return lines


def write_la2021(root: Path, seed: int = 0, keys_dir: str = "keys/LA", asv: bool = True) -> Path:
    """An ASVspoof 2021 LA eval tree: ``ASVspoof2021_LA_eval/flac`` and keys with the organisers' ASV files."""
    rng = np.random.default_rng(seed)
    lines = la2021_lines()
    keys = root / keys_dir
    (keys / "CM").mkdir(parents=True)
    (keys / "CM" / "trial_metadata.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        fields = line.split()
        _audio(root / "ASVspoof2021_LA_eval" / "flac" / f"{fields[1]}.flac", rng, fields[5] == "spoof")
    if asv:
        write_la2021_asv(keys, rng)
    return root


def write_la2021_asv(keys: Path, rng) -> None:
    """ASV/trial_metadata.txt (KEY target|nontarget|spoof) and ASV/ASVTorch_Kaldi/score.txt, line by line."""
    meta, scores = [], []
    for i in range(60):
        label = ("target", "nontarget", "spoof")[i % 3]
        attack = f"A{7 + i % 3:02d}" if label == "spoof" else "bonafide"
        subset = "eval" if i < 54 else "progress"
        trial = f"LA_E_A{2000000 + i}"
        meta.append(f"LA_{i % 4:04d} {trial} {LA_CODECS[i % 3]} loc_tx {attack} {label} notrim {subset}")
        mean = {"target": 6.0, "nontarget": -3.0, "spoof": 2.0}[label]
        scores.append(f"LA_{i % 4:04d} {trial} {rng.normal(mean, 2.5):.6f}")
    (keys / "ASV" / "ASVTorch_Kaldi").mkdir(parents=True)
    (keys / "ASV" / "trial_metadata.txt").write_text("\n".join(meta) + "\n")
    (keys / "ASV" / "ASVTorch_Kaldi" / "score.txt").write_text("\n".join(scores) + "\n")


DF_VOCODERS = ("traditional_vocoder", "neural_vocoder_autoregressive", "waveform_concatenation")


def write_df2021(root: Path, seed: int = 1) -> Path:
    """An ASVspoof 2021 DF eval tree: 13-column keys under ``keys/DF/CM`` and flac audio."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(16):
        spoof = i % 2 == 1
        trial = f"DF_E_{2000000 + i}"
        attack, vocoder = (f"A{10 + i % 3}", DF_VOCODERS[i % 3]) if spoof else ("bonafide", "bonafide")
        source = ("asvspoof", "vcc2018", "vcc2020")[i % 3]
        compr = ("nocodec", "low_mp3", "high_m4a")[i % 3]
        key = "spoof" if spoof else "bonafide"
        lines.append(f"LA_{i % 3:04d} {trial} {compr} {source} {attack} {key} notrim eval {vocoder} - - - -")
        _audio(root / "ASVspoof2021_DF_eval" / "flac" / f"{trial}.flac", rng, spoof)
    (root / "keys" / "DF" / "CM").mkdir(parents=True)
    (root / "keys" / "DF" / "CM" / "trial_metadata.txt").write_text("\n".join(lines) + "\n")
    return root


def write_in_the_wild(root: Path, seed: int = 2, n: int = 12) -> Path:
    """``release_in_the_wild/meta.csv`` (file,speaker,label with bona-fide|spoof) and the wav files beside it."""
    rng = np.random.default_rng(seed)
    folder = root / "release_in_the_wild"
    rows = ["file,speaker,label"]
    for i in range(n):
        spoof = i % 3 == 0
        rows.append(
            f"{i}.wav,{('Alec Guinness', 'Barack Obama', 'Ayn Rand')[i % 3]},{'spoof' if spoof else 'bona-fide'}"
        )
        _audio(folder / f"{i}.wav", rng, spoof)
    (folder / "meta.csv").write_text("\n".join(rows) + "\n")
    return root


EMOTIONS = ("Angry", "Happy", "Neutral", "Sad")
# ESD numbers each speaker's utterances in blocks of 350 per emotion (first number of each block)
ESD_FIRST = {"Neutral": 1, "Angry": 351, "Happy": 701, "Sad": 1051, "Surprise": 1401}
EMOSPOOF_SYSTEMS = ("StyleTTS2", "F5-TTS", "CosyVoice")
# Spoof paths of EmoSpoof-TTS's candidate archive layouts (the real one is not published), from system, speaker,
# emotion and ESD utterance number; "dses" is this reader's first assumption (CosyVoice's spoofs in flac)
EMOSPOOF_LAYOUTS = {
    "dses": lambda sys, spk, emo, utt: (
        f"{sys}/{spk}/{emo}/{spk}_{emo}_{sys}_0" + (".flac" if sys == "CosyVoice" else ".wav")
    ),
    "flat": lambda sys, spk, emo, utt: f"{sys.lower()}/{spk}_{utt}_{emo}.wav",
    "speaker_first": lambda sys, spk, emo, utt: f"{spk}/{emo}/{sys.replace('-', '')}/{spk}_{utt}.wav",
    "names": lambda sys, spk, emo, utt: f"wavs/{sys.replace('-', '')}_{spk}_{emo}_{utt}.wav",
    "esd_ids": lambda sys, spk, emo, utt: f"{sys}/{spk}_{utt}t1.wav",
}


def write_emospoof_tts(root: Path, seed: int = 3, layout: str = "dses") -> Path:
    """Spoofs of two speakers by the three systems in the four emotions at :data:`EMOSPOOF_LAYOUTS` ``[layout]``,
    and ESD (with a speaker and an emotion that have no spoofs, which the reader leaves out)."""
    rng = np.random.default_rng(seed)
    for system in EMOSPOOF_SYSTEMS:
        for speaker in ("0012", "0014"):
            for emotion in EMOTIONS:
                utt = f"{ESD_FIRST[emotion] + 7:06d}"
                _audio(root / EMOSPOOF_LAYOUTS[layout](system, speaker, emotion, utt), rng, True, 0.2)
    for speaker in ("0012", "0014", "0019"):
        for emotion in EMOTIONS + ("Surprise",):
            utt = f"{ESD_FIRST[emotion] + 7:06d}"
            _audio(root / "ESD" / speaker / emotion / "test" / f"{speaker}_{utt}.wav", rng, False, 0.2)
    return root


# Real-format EmoFake names (English test speakers 0014, 0018): ESD bona fide <speaker>_<Emotion>_<utt> and
# conversions S<k>_<Source>2<Target>_<speaker>_<utt>; one name without ".wav", as GADE's reader allows
EMOFAKE_LINES = (
    ("0014_Angry_000355.wav", False),
    ("S6_Sad2Surprise_0014_001236.wav", True),
    ("0014_Neutral_000002.wav", False),
    ("S7_Sad2Angry_0014_001055.wav", True),
    ("0018_Surprise_001539.wav", False),
    ("S4_Sad2Happy_0018_001345.wav", True),
    ("S6_Sad2Neutral_0014_001398", True),
    ("0018_Sad_001100.wav", False),
)


def write_emofake(
    root: Path, seed: int = 4, language: str = "English", labels=("genuine", "fake"), top: str = ""
) -> Path:
    """``[top/]<language>/test/label.txt`` (``NAME LABEL``) and the audio in ``<language>/test/wav/``."""
    rng = np.random.default_rng(seed)
    split = root / top / language / "test"
    lines = []
    for name, fake in EMOFAKE_LINES:
        lines.append(f"{name} {labels[fake]}")
        _audio(split / "wav" / f"{name.removesuffix('.wav')}.wav", rng, fake)
    (split / "label.txt").write_text("\n".join(lines) + "\n")
    return root
