"""The emotional spoof sets: DSES, EmoSpoof-TTS and EmoFake.

* DSES (this project's ``DSES/``): ``ESD/<speaker>/<emotion>/`` bona fide, ``<System>/<speaker>/<emotion>/``
  spoofs; read by :func:`antispoof.protocols.scan_dses`.
* EmoSpoof-TTS (Mahapatra et al., Interspeech 2025, "Can Emotion Fool Anti-spoofing?"; CC-BY-4.0, Zenodo
  15557842, https://emospoof-tts.github.io/Dataset): 36,000 spoofs of 10 ESD speakers (0011-0020) in 4 emotions
  (Angry, Happy, Sad, Neutral) by StyleTTS2, F5-TTS and CosyVoice; spoofs only, bona fide is ESD. The project
  page documents the content but NOT the archive's folder layout, and it could not be verified here: this reader
  expects the DSES shape, ``<System>/<speaker>/<emotion>/*`` under PATH, and ESD (or a link to it) at
  ``PATH/ESD``; only ESD speakers and emotions that have spoofs are kept, so bona fide and spoof are paired.
* EmoFake (Zhao et al., CCL 2024; Zenodo 10443769): emotional voice conversion of ESD, English and Chinese. Its
  archive layout could not be verified here either: this reader expects ``PATH/EN`` (English; ``EmoFake_CH``
  reads ``PATH/CH``) holding label files ``*.txt`` whose lines are ``FILE ... LABEL`` (label fake|spoof or
  real|genuine|bonafide; a middle field, when present, is the conversion model), with the audio anywhere below.
"""

from __future__ import annotations

from pathlib import Path

from antispoof.evalsets.base import EvalSet, protocol_lines, require_dir, split_line
from antispoof.protocols import BONAFIDE_SYSTEM_DIR, ProtocolError, Trial, scan_dses

EMOFAKE_LABELS = {
    "fake": "spoof",
    "spoof": "spoof",
    "real": "bonafide",
    "genuine": "bonafide",
    "bonafide": "bonafide",
}


def read_dses(root: Path) -> EvalSet:
    trials, _ = scan_dses(root)
    if not trials:
        raise ProtocolError(
            f"{root}: no DSES audio (expected ESD/<speaker>/<emotion>/ and <System>/<speaker>/<emotion>/)"
        )
    return EvalSet("DSES", trials, ("emotion", "system"), reference_group="neutral")


def read_emospoof_tts(root: Path) -> EvalSet:
    """EmoSpoof-TTS spoofs with the ESD bona fide of the same speakers and emotions."""
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


def _audio_index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac")}


def read_emofake(root: Path, language: str = "EN") -> EvalSet:
    """EmoFake, one language part: attribute the conversion model (system) where the label files give it."""
    folder = require_dir(root / language, f"EmoFake {language}")
    labels = sorted(folder.rglob("*.txt"))
    if not labels:
        raise ProtocolError(f"{folder}: no EmoFake label file (*.txt)")
    audio = _audio_index(folder)
    trials = []
    for path in labels:
        for number, line in protocol_lines(path):
            fields = split_line(path, number, line, 2)
            label = fields[-1].lower()
            if label not in EMOFAKE_LABELS:
                raise ProtocolError(
                    f"{path}:{number}: label {fields[-1]!r} is not fake/spoof or real/genuine/bonafide"
                )
            stem = Path(fields[0]).stem
            if stem not in audio:
                raise ProtocolError(f"{path}:{number}: no audio file {stem}.wav/.flac below {folder}")
            key = EMOFAKE_LABELS[label]
            system = "-" if key == "bonafide" else (fields[1] if len(fields) > 2 else "EVC")
            speaker = stem.split("_")[0]
            trials.append(Trial(stem, speaker, system, key, audio[stem], extra={"language": language}))
    return EvalSet(f"EmoFake_{language}", trials, ("system",))
