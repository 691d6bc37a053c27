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

from antispoof.audio import AUDIO_EXTENSIONS
from antispoof.emotions import normalize_emotion
from antispoof.evalsets.base import EvalSet, first_existing, protocol_lines, require_dir, split_line
from antispoof.protocols import (
    BONAFIDE_SYSTEM_DIR,
    DSESScanReport,
    ProtocolError,
    Trial,
    scan_dses,
    scan_dses_system,
)


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
    and file names; neither the project page nor the paper nor any stored copy of the record lists them. A hint
    only: third-party scores (github.com/affectdf33-data/codes AffectDF_Trained_scores/AASIST/EmoSpoofTTS.txt)
    pair ESD ``0014_000001.wav`` with spoofs ``0014_000001t1.wav``, utterance numbers 1-1400 (ESD's Neutral,
    Angry, Happy, Sad blocks) and no system in the name.

    So each spoof's attributes are inferred from its path below PATH (every audio file outside ``PATH/ESD``):
    each folder name, the file name without extension, and their pieces split at ``_``, ``-``, blanks and dots
    are the parts tested:

    * system: a part that, lower-cased without punctuation, starts with ``styletts``, ``f5tts`` or
      ``cosyvoice`` or is ``f5`` (StyleTTS-2, F5TTS, cosyvoice2, ...), reported as StyleTTS2, F5-TTS, CosyVoice;
      if none, the folder directly under PATH with its own name, unless that is a speaker, an emotion,
      ``EmoSpoof*`` or ``wav(s)``/``audio``/``flac`` (so the DSES shape ``PATH/<System>/<speaker>/<emotion>/``
      keeps working for any system name);
    * speaker: a part that is exactly one of 0011-0020;
    * emotion: a part that is an emotion word (:func:`antispoof.emotions.normalize_emotion`); if none, the ESD
      utterance number of a file-name piece ``NNNNNN`` (letters and digits may follow, as ``000001t1``).

    ESD numbers each speaker's utterances in emotion blocks of 350, 1-350 Neutral, 351-700 Angry, 701-1050
    Happy, 1051-1400 Sad, 1401-1750 Surprise: confirmed on the 3,600 EmoFake test names of speakers 0014 and 0018
    (bona fide ``<speaker>_<Emotion>_<utt>`` and conversion sources) in github.com/cyaaronk/audio_deepfake_eval
    eer_files_600/conformer-based-classifier-for-anti-spoofing/keys/emofake.txt, all inside their blocks. A
    path naming two different systems, speakers or emotions counts as not inferred. Every spoof must yield all
    three, else one error line names an example and the count. Bona fide is ESD (or a link to it) at
    ``PATH/ESD/<speaker>/<emotion>/``; only ESD speakers and emotions that have spoofs are kept, so bona fide
    and spoof are paired.
    """
    require_dir(root / BONAFIDE_SYSTEM_DIR, "ESD bona fide (link or copy ESD to PATH/ESD)")
    spoofs = _emospoof_spoofs(root)
    pairs = {(t.speaker, t.emotion) for t in spoofs}
    esd = scan_dses_system(root, root / BONAFIDE_SYSTEM_DIR, DSESScanReport())
    bonafide = [t for t in esd if (t.speaker, t.emotion) in pairs]
    if not bonafide:
        raise ProtocolError(
            f"{root / BONAFIDE_SYSTEM_DIR}: no ESD audio of the spoofed speakers and emotions"
        )
    return EvalSet("EmoSpoofTTS", bonafide + spoofs, ("emotion", "system"), reference_group="neutral")


EMOSPOOF_SYSTEMS = (("styletts", "StyleTTS2"), ("f5tts", "F5-TTS"), ("cosyvoice", "CosyVoice"))
EMOSPOOF_SPEAKERS = {f"{n:04d}" for n in range(11, 21)}
ESD_UTTERANCE = re.compile(r"(\d{6})[A-Za-z]*\d*")
AUDIO_FOLDERS = {"wav", "wavs", "audio", "flac"}  # never taken for a system's name
ESD_BLOCKS = ("neutral", "angry", "happy", "sad", "surprise")  # 350 utterances each, numbered from 1


def _emospoof_spoofs(root: Path) -> list[Trial]:
    """Every audio file below ``root`` outside ESD, with its inferred attributes; one line if any lacks one."""
    paths = _spoof_paths(root)
    if not paths:
        raise ProtocolError(
            f"{root}: no EmoSpoof-TTS spoofs (expected audio outside ESD/, e.g. <System>/<speaker>/<emotion>/)"
        )
    found = [_emospoof_attributes(path.relative_to(root)) for path in paths]
    failed = [
        (path, [k for k, v in f.items() if v is None]) for path, f in zip(paths, found) if None in f.values()
    ]
    if failed:
        path, missing = failed[0]
        raise ProtocolError(
            f"{root}: cannot infer the {', '.join(missing)} of {len(failed)} of {len(paths)} spoof files, e.g. "
            f"{path.relative_to(root).as_posix()} (expected StyleTTS2/F5-TTS/CosyVoice, a speaker 0011-0020 and "
            "an emotion word or ESD utterance number in its folder or file names)"
        )
    return [
        Trial(
            p.relative_to(root).with_suffix("").as_posix(),
            f["speaker"],
            f["system"],
            "spoof",
            p,
            f["emotion"],
        )
        for p, f in zip(paths, found)
    ]


def _spoof_paths(root: Path) -> list[Path]:
    """The audio files below ``root`` outside ESD and hidden entries, sorted."""
    tops = [p for p in root.iterdir() if not p.name.startswith(".") and p.name.upper() != BONAFIDE_SYSTEM_DIR]
    paths = (path for top in tops for path in ([top] if top.is_file() else top.rglob("*")))
    return sorted(
        path
        for path in paths
        if path.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.is_file()
    )


def _tokens(name: str) -> list[str]:
    """A folder or file name and its pieces split at ``_``, ``-``, blanks and dots."""
    return [name] + [t for t in re.split(r"[_\-\s.]+", name) if t and t != name]


def _emospoof_attributes(relative: Path) -> dict[str, str | None]:
    """system, speaker and emotion of one spoof from its path relative to PATH (None where not inferred)."""
    stem = _tokens(relative.stem)
    parts = [t for folder in relative.parts[:-1] for t in _tokens(folder)] + stem
    speaker = _only({p for p in parts if p in EMOSPOOF_SPEAKERS})
    # a word in the path decides (two different ones: not inferred); the fallbacks apply only where none is named
    emotions = {normalize_emotion(p) for p in parts} - {None}
    emotion = _only(emotions) if emotions else _only({_esd_block(t) for t in stem} - {None})
    systems = {_system(p) for p in parts} - {None}
    system = _only(systems) if systems else _folder_system(relative)
    return {"system": system, "speaker": speaker, "emotion": emotion}


def _only(values: set) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def _squashed(name: str) -> str:
    """Lower case without punctuation: StyleTTS-2 -> styletts2."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _system(part: str) -> str | None:
    name = _squashed(part)
    if name == "f5":
        return "F5-TTS"
    return next((system for prefix, system in EMOSPOOF_SYSTEMS if name.startswith(prefix)), None)


def _esd_block(token: str) -> str | None:
    match = ESD_UTTERANCE.fullmatch(token)
    number = int(match[1]) if match else 0
    return ESD_BLOCKS[(number - 1) // 350] if 1 <= number <= 350 * len(ESD_BLOCKS) else None


def _folder_system(relative: Path) -> str | None:
    """The folder directly under PATH as the system, unless it names a speaker, an emotion, the set itself or
    just audio (``wavs``)."""
    if len(relative.parts) < 2:
        return None
    top = relative.parts[0]
    name = _squashed(top)
    named = top in EMOSPOOF_SPEAKERS or normalize_emotion(top) or "emospoof" in name or name in AUDIO_FOLDERS
    return None if named else top


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
