"""Evaluation sets by name: each reader turns a set's published layout into trials with attribute columns and
says which metrics apply. ``main.py --eval --eval_set NAME=PATH`` reads them through :func:`read_eval_set`."""

from __future__ import annotations

import os
from pathlib import Path

from antispoof.evalsets.asvspoof2019 import read_la2019
from antispoof.evalsets.asvspoof2021 import read_df2021, read_la2021
from antispoof.evalsets.base import EvalSet, Reader, trial_table
from antispoof.evalsets.emotional import read_dses, read_emofake, read_emospoof_tts
from antispoof.evalsets.in_the_wild import read_in_the_wild

READERS = {
    reader.name: reader
    for reader in (
        Reader(
            "LA19",
            read_la2019,
            "ASVspoof 2019 LA eval",
            "71,237 trials",
            "ODC-By",
            "download_dataset.py --dataset LA",
            "EER, min t-DCF (main.py --eval)",
        ),
        Reader(
            "LA21",
            read_la2021,
            "ASVspoof 2021 LA eval (codecs, transmission)",
            "181,566 trials (148,176 in the eval subset)",
            "ODC-By",
            "Zenodo 4837263 (audio) + asvspoof.org LA-keys-full.tar.gz (keys)",
            "EER, revised min t-DCF, per attack x codec",
        ),
        Reader(
            "DF21",
            read_df2021,
            "ASVspoof 2021 DF eval (compression, vocoders, VCC data)",
            "611,829 trials (533,928 in the eval subset)",
            "ODC-By",
            "Zenodo 4835108 (4 parts) + asvspoof.org DF-keys-full.tar.gz (keys)",
            "EER per vocoder x compression",
        ),
        Reader(
            "ITW",
            read_in_the_wild,
            "In-the-Wild (celebrities, politicians)",
            "31,779 files, 58 speakers",
            "see deepfake-total.com",
            "deepfake-total.com/in_the_wild (release_in_the_wild.zip)",
            "EER",
        ),
        Reader(
            "DSES",
            read_dses,
            "DSES: emotional TTS spoofs + ESD",
            "see DSES/README",
            "see DSES/",
            "download_dataset.py --dataset emotional",
            "EER per emotion x system",
        ),
        Reader(
            "EmoSpoofTTS",
            read_emospoof_tts,
            "EmoSpoof-TTS: StyleTTS2, F5-TTS, CosyVoice spoofs of 10 ESD speakers, 4 emotions + ESD bona fide",
            "36,000 spoofs",
            "CC-BY-4.0",
            "Zenodo 15557842; ESD linked as PATH/ESD",
            "EER per emotion x system",
        ),
        Reader(
            "EmoFake",
            read_emofake,
            "EmoFake English test split: ESD bona fide and its emotional voice conversions by 7 models (S1-S7)",
            "see Zenodo 10443769 (EmoFake.tar.gz, 8.8 GB with both parts)",
            "see Zenodo 10443769",
            "Zenodo 10443769; PATH holds English/test/label.txt and English/test/wav/",
            "EER per emotion (target emotion for conversions), conversion model",
        ),
        Reader(
            "EmoFake_CH",
            lambda root: read_emofake(root, "Chinese"),
            "EmoFake Chinese test split",
            "see Zenodo 10443769",
            "see Zenodo 10443769",
            "Zenodo 10443769; PATH holds Chinese/test/label.txt and Chinese/test/wav/",
            "EER per emotion, conversion model",
        ),
    )
}


def reader_of(name: str) -> Reader:
    by_lower = {key.lower(): reader for key, reader in READERS.items()}
    if name.lower() not in by_lower:
        raise ValueError(f"unknown eval set {name!r}; known: {', '.join(READERS)}")
    return by_lower[name.lower()]


def read_eval_set(name: str, path: str | os.PathLike) -> EvalSet:
    """The trials of set ``name`` (a registry name, any case) under ``path``; a broken layout raises
    :class:`antispoof.protocols.ProtocolError` with one line naming the file."""
    evalset = reader_of(name).read(Path(path))
    evalset.name = name
    return evalset


def parse_eval_set(text: str) -> tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); NAME must be a known set."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--eval_set {text!r}: expected NAME=PATH (NAME one of {', '.join(READERS)})")
    reader_of(name)
    return name, path


__all__ = ["READERS", "EvalSet", "Reader", "parse_eval_set", "read_eval_set", "reader_of", "trial_table"]
