"""The emotional spoof sets: DSES, EmoSpoof-TTS and EmoFake.

* DSES (this project's ``DSES/``): ``ESD/<speaker>/<emotion>/`` bona fide, ``<System>/<speaker>/<emotion>/``
  spoofs; read by :func:`antispoof.protocols.scan_dses`.
* EmoSpoof-TTS (Mahapatra et al., Interspeech 2025; CC-BY-4.0; Zenodo 15557842): spoofs only, bona fide is
  ESD. What is confirmed and what is assumed: see :func:`read_emospoof_tts`.
* EmoFake (Zhao et al., CCL 2024; Zenodo 10443769, ``EmoFake.tar.gz``): emotional voice conversion of ESD,
  English and Chinese parts with train/dev/test splits, each a ``label.txt`` and a ``wav/`` folder. Confirmed
  from public sources: see :func:`read_emofake`.
"""

from __future__ import annotations

import re
from pathlib import Path

from antispoof.emotions import normalize_emotion
from antispoof.evalsets.base import EvalSet, first_existing, protocol_lines, require_dir, split_line
from antispoof.protocols import BONAFIDE_SYSTEM_DIR, ProtocolError, Trial, scan_dses


def read_dses(root: Path) -> EvalSet:
    trials, _ = scan_dses(root)
    if not trials:
        raise ProtocolError(
            f"{root}: no DSES audio (expected ESD/<speaker>/<emotion>/ and <System>/<speaker>/<emotion>/)"
        )
    return EvalSet("DSES", trials, ("emotion", "system"), reference_group="neutral")


def read_emospoof_tts(root: Path) -> EvalSet:
    """EmoSpoof-TTS spoofs with the ESD bona fide of the same speakers and emotions.

    Confirmed (https://emospoof-tts.github.io/Dataset and arXiv 2505.23962): 36,000 spoofs of 10 ESD speakers
    (5 male, 5 female; ESD's English speakers are 0011-0020; the page's samples are 0012, 0014, 0018) in Angry,
    Happy, Sad and Neutral by StyleTTS2, F5-TTS and CosyVoice, with ESD as the bona fide; the set itself is
    spoof-only (its Hugging Face copy SpeechAntiSpoofingBenchmarks/EmoSpoofTTS is parquet and scored as
    spoof-only by the Speech Anti-Spoofing Arena). ASSUMED, not confirmed: the Zenodo archive's folder layout
    and file names; neither the project page nor the paper nor any stored copy of the record lists them, so
    this reader expects the DSES shape ``PATH/<System>/<speaker>/<emotion>/**/*.wav|flac`` and ESD (or a link
    to it) at ``PATH/ESD``. Only ESD speakers and emotions that have spoofs are kept, so bona fide and spoof are
    paired.
    """
    require_dir(root / BONAFIDE_SYSTEM_DIR, "ESD bona fide (link or copy ESD to PATH/ESD)")
    trials, _ = scan_dses(root)
    spoofs = [t for t in trials if t.key == "spoof"]
    if not spoofs:
        raise ProtocolError(
            f"{root}: no EmoSpoof-TTS spoofs (expected <System>/<speaker>/<emotion>/ folders)"
        )
    pairs = {(t.speaker, t.emotion) for t in spoofs}
    bonafide = [t for t in trials if t.key == "bonafide" and (t.speaker, t.emotion) in pairs]
    if not bonafide:
        raise ProtocolError(
            f"{root / BONAFIDE_SYSTEM_DIR}: no ESD audio of the spoofed speakers and emotions"
        )
    return EvalSet("EmoSpoofTTS", bonafide + spoofs, ("emotion", "system"), reference_group="neutral")


EMOFAKE_LABELS = {
    "genuine": "bonafide",
    "bonafide": "bonafide",
    "real": "bonafide",
    "fake": "spoof",
    "spoof": "spoof",
}
EMOFAKE_BONAFIDE = re.compile(r"(?P<speaker>\d{4})_(?P<emotion>[A-Za-z]+)_\d+")
EMOFAKE_SPOOF = re.compile(
    r"(?P<system>S\d+)_(?P<source>[A-Za-z]+)2(?P<emotion>[A-Za-z]+)_(?P<speaker>\d{4})_\d+"
)


def read_emofake(root: Path, language: str = "English", split: str = "test") -> EvalSet:
    """One EmoFake part and split: ``<language>/<split>/label.txt`` and the audio in ``<language>/<split>/wav/``.

    Confirmed: the folders ``EmoFake/{English,Chinese}/{train,dev,test}/label.txt`` (GADE, the paper's code:
    github.com/zy511361103/GADE config/AASIST.conf) with the audio in ``<split>/wav/<name>.wav`` (the
    ``original_path`` column of huggingface.co/datasets/DeepFense/EmoFake); label lines ``NAME LABEL``, NAME with
    or without ``.wav``, LABEL genuine or bonafide for bona fide, anything else fake (GADE data_utils.py
    genSpoof_list, which reads EmoFake and ADD label files alike); names ``<speaker>_<Emotion>_<utt>`` for ESD
    bona fide and ``S<k>_<Source>2<Target>_<speaker>_<utt>`` for conversions by model S<k> (GADE data_utils.py
    and evaluate.py parse them so; the English test
    names in github.com/cyaaronk/audio_deepfake_eval eer_files_600/.../keys/emofake.txt and the card of
    huggingface.co/datasets/SpeechAntiSpoofingBenchmarks/EmoFake_test). PATH is the unpacked folder holding
    ``English/`` or one that holds ``EmoFake/English/``. ASSUMED: that the fake label is spelled fake or spoof
    (others are refused), and that the Chinese part names its files the same way (none were seen). A spoof's
    emotion is its target emotion (as GADE's per-emotion test), the source emotion is kept as ``source_emotion``.
    """
    candidates = (f"{language}/{split}", f"EmoFake/{language}/{split}")
    labels = first_existing(root, candidates, f"EmoFake {language} {split} folder") / "label.txt"
    trials = [_emofake_trial(labels, number, line, language) for number, line in protocol_lines(labels)]
    if not trials:
        raise ProtocolError(f"{labels}: no trials")
    return EvalSet(f"EmoFake_{language}", trials, ("emotion", "system"), reference_group="neutral")


def _emofake_trial(labels: Path, number: int, line: str, language: str) -> Trial:
    name, label = split_line(labels, number, line, 2)[:2]
    key = EMOFAKE_LABELS.get(label.lower())
    if key is None:
        raise ProtocolError(f"{labels}:{number}: label {label!r} is not genuine/bonafide or fake/spoof")
    stem = Path(name).name.removesuffix(".wav")
    match = (EMOFAKE_SPOOF if key == "spoof" else EMOFAKE_BONAFIDE).fullmatch(stem)
    emotion = normalize_emotion(match["emotion"]) if match else None
    if emotion is None:
        shape = "S<k>_<Source>2<Target>_<speaker>_<utt>" if key == "spoof" else "<speaker>_<Emotion>_<utt>"
        raise ProtocolError(f"{labels}:{number}: a {label} file's name {stem!r} is not {shape}")
    audio = labels.parent / "wav" / f"{stem}.wav"
    if not audio.is_file():
        raise ProtocolError(f"{labels}:{number}: audio file {audio} not found")
    system = match["system"] if key == "spoof" else "-"
    source = normalize_emotion(match["source"]) if key == "spoof" else None
    extra = {"language": language, "source_emotion": source or "-"}
    return Trial(stem, match["speaker"], system, key, audio, emotion=emotion, extra=extra)
