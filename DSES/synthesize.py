"""Generate an emotional speech corpus in the DSES layout with a chosen TTS back-end.

    python DSES/synthesize.py --backend espeak --texts DSES/demo_texts.txt --out demo_data/DSES \\
        --speakers s1 s2 --system ESD
    python DSES/synthesize.py --backend vocoder --reference_audio demo_data/DSES/ESD --out demo_data/DSES \\
        --option n_fft=1024 --option n_mels=40
    python DSES/synthesize.py --backend zonos --texts 0011.txt --reference_audio ESD --speakers 0011 \\
        --out DSES_new

writes `<out>/<System>/<speaker>/<emotion>/<id>.flac` (16 kHz mono, 16-bit FLAC) and
`<out>/<System>/manifest.csv` with one row per file: path (relative to `<out>/<System>`), id, speaker,
emotion, system, text, backend, settings (JSON), seed, duration (s).

Resuming: files already there are kept and skipped, so re-running a stopped command finishes it. Audio is
written to `<id>.flac.partial` and renamed, so a file with the final name is always complete. The manifest
is replaced atomically (temporary file + rename) at most every few seconds during a run and at its end,
including after an error or Ctrl-C; on start it is reconciled with the files on disk (rows of missing files
dropped, files without a row given one), so after any stop it lists exactly the files present.

Failures of single utterances are counted, listed at the end (and in `<System>/failures.txt`) and do not
stop the run; the command then exits with status 1.

The same work is available as functions, for notebooks and the demo:

    from DSES.synthesize import synthesize_corpus
    report = synthesize_corpus("espeak", ["Hello there.", "Good morning."], "out", speakers=["s1"])
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from antispoof.audio import AUDIO_EXTENSIONS
from antispoof.emotions import normalize_emotion, require_emotion
from antispoof.fileio import atomic_open
from DSES.backends import EMOTIONS, Backend, get_backend
from DSES.backends.base import check_name, seed_everything, stable_seed, to_mono_float32

SAMPLE_RATE = 16000
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = (
    "path",
    "id",
    "speaker",
    "emotion",
    "system",
    "text",
    "backend",
    "settings",
    "seed",
    "duration",
)
PARTIAL_SUFFIX = ".partial"
MANIFEST_WRITE_INTERVAL_S = 5.0
DEFAULT_REFERENCE_SECONDS = {"zonos": 20.0, "cosyvoice": 8.0}


# ---------------------------------------------------------------------------------------------- texts
@dataclass(frozen=True)
class TextLine:
    """One sentence to render: `emotion` is set when the text file gives one (ESD's third column)."""

    id: str
    text: str
    emotion: str | None = None


def _decode_text_file(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):  # ESD's Chinese speakers' transcripts are GBK
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError(f"{path}: not UTF-8, UTF-16 or GB18030 text")


def parse_text_lines(lines: Iterable[str], source: str = "<texts>") -> list[TextLine]:
    """Parse text-file lines (format in DSES/README.md).

    `id<TAB>text<TAB>emotion` (ESD transcripts), `id<TAB>text`, or a plain sentence per line (its id is the
    line's 1-based number among the sentences, zero-padded to 5 digits). Blank lines and lines starting with
    `#` are skipped. Ids must be unique and usable as file names.
    """
    parsed: list[TextLine] = []
    seen: dict[str, int] = {}
    sentence_number = 0
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sentence_number += 1
        where = f"{source}:{line_number}"
        fields = line.split("\t")
        if len(fields) == 1:
            utt_id, text, emotion = f"{sentence_number:05d}", fields[0].strip(), None
        elif len(fields) in (2, 3):
            utt_id, text = fields[0].strip(), fields[1].strip()
            emotion = fields[2].strip() if len(fields) == 3 and fields[2].strip() else None
        else:
            raise ValueError(
                f"{where}: expected 'text', 'id<TAB>text' or 'id<TAB>text<TAB>emotion', got {line!r}"
            )
        if not text:
            raise ValueError(f"{where}: empty text")
        try:
            check_name("utterance id", utt_id)
            emotion = require_emotion(emotion) if emotion is not None else None
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        if utt_id in seen:
            raise ValueError(f"{where}: id {utt_id!r} already used on line {seen[utt_id]}")
        seen[utt_id] = line_number
        parsed.append(TextLine(utt_id, text, emotion))
    return parsed


def read_texts(path: str | Path) -> list[TextLine]:
    """Read a text file (see `parse_text_lines`); raises a clear error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found")
    lines = parse_text_lines(_decode_text_file(path).splitlines(), str(path))
    if not lines:
        raise ValueError(f"{path}: no sentences in the text file")
    return lines


def as_text_lines(texts) -> list[TextLine]:
    """Accept a path, a list of sentences, of (id, text[, emotion]) tuples, or of TextLine."""
    if texts is None:
        return []
    if isinstance(texts, (str, Path)):
        return read_texts(texts)
    lines: list[TextLine] = []
    plain: list[str] = []
    for entry in texts:
        if isinstance(entry, TextLine):
            lines.append(entry)
        elif isinstance(entry, str):
            plain.append(entry)
        else:
            lines.append(TextLine(*entry))
    if plain and lines:
        raise ValueError("texts: give either plain sentences or (id, text[, emotion]) entries, not both")
    if plain:
        return parse_text_lines(plain, "<texts list>")
    return parse_text_lines(
        ["\t".join([line.id, line.text] + ([line.emotion] if line.emotion else [])) for line in lines],
        "<texts list>",
    )


# ------------------------------------------------------------------------------------------- audio I/O
def load_audio_16k(path: str | Path) -> np.ndarray:
    """Read an audio file as float32 mono at 16 kHz (channels averaged, soxr resampling)."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for unreadable files
        raise ValueError(f"{path}: cannot read audio ({error})") from None
    if audio.shape[0] == 0:
        raise ValueError(f"{path}: the audio file is empty")
    return resample_to_16k(audio.mean(axis=1), rate)


def resample_to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return audio
    return soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def write_flac_atomic(path: Path, audio: np.ndarray) -> float:
    """Write 16 kHz mono 16-bit FLAC via `<path>.partial` + rename; returns the duration in seconds.

    Audio whose peak exceeds full scale is scaled down to a 0.99 peak rather than clipped.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio * (0.99 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    sf.write(str(partial), audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(partial, path)
    return audio.size / SAMPLE_RATE


# ------------------------------------------------------------------------------------ reference audio
@dataclass(frozen=True)
class ReferenceUtterance:
    id: str
    speaker: str
    emotion: str
    path: Path
    text: str = ""


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _reference_texts(root: Path, texts: Sequence[TextLine]) -> dict[tuple[str, str, str] | str, str]:
    """Texts of a bona fide corpus: its manifest.csv, ESD's `<speaker>/<speaker>.txt`, then `texts` by id."""
    known: dict[tuple[str, str, str] | str, str] = {line.id: line.text for line in texts}
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        transcript = speaker_dir / f"{speaker_dir.name}.txt"
        if transcript.is_file():
            try:
                for line in parse_text_lines(_decode_text_file(transcript).splitlines(), str(transcript)):
                    known.setdefault(line.id, line.text)
            except ValueError as error:
                print(f"warning: {error}; its texts are not used", file=sys.stderr)
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        for row in read_manifest(manifest):
            known[(row["speaker"], row["emotion"], row["id"])] = row["text"]
    return known


def scan_reference_corpus(
    root: str | Path,
    speakers: Sequence[str] | None = None,
    emotions: Sequence[str] | None = None,
    texts: Sequence[TextLine] = (),
) -> list[ReferenceUtterance]:
    """Bona fide utterances under `root/<speaker>/<emotion>/**/<id>.{flac,wav,mp3,ogg}`.

    This is the layout this tool writes and the one ESD ships (`0011/Angry/train/0011_000351.wav`; emotion
    folder names in any case or form). Other folders are ignored. Texts come from `root/manifest.csv`, ESD's
    `root/<speaker>/<speaker>.txt`, or `texts` (by id); an utterance without one gets "".
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: reference audio folder not found")
    wanted_speakers = set(speakers) if speakers else None
    wanted_emotions = {require_emotion(e) for e in emotions} if emotions else None
    known_texts = _reference_texts(root, texts)
    found: dict[tuple[str, str, str], ReferenceUtterance] = {}
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        speaker = speaker_dir.name
        if wanted_speakers is not None and speaker not in wanted_speakers:
            continue
        for emotion_dir in sorted(p for p in speaker_dir.iterdir() if p.is_dir()):
            emotion = normalize_emotion(emotion_dir.name)
            if emotion is None or (wanted_emotions is not None and emotion not in wanted_emotions):
                continue
            for path in _audio_files(emotion_dir):
                utt_id = path.stem
                key = (speaker, emotion, utt_id)
                if key in found:
                    raise ValueError(f"{path}: id {utt_id!r} also at {found[key].path}")
                text = known_texts.get(key, known_texts.get(utt_id, ""))
                found[key] = ReferenceUtterance(utt_id, speaker, emotion, path, text)
    if not found:
        raise ValueError(
            f"{root}: no audio found in the layout <speaker>/<emotion>/<id>.(flac|wav|mp3|ogg)"
            + (f" for speakers {sorted(wanted_speakers)}" if wanted_speakers else "")
        )
    return list(found.values())


def speaker_reference_audio(root: str | Path, speaker: str, seconds: float) -> np.ndarray:
    """About `seconds` of a speaker's bona fide speech at 16 kHz, for voice cloning / prompt speech.

    Uses `root/<speaker>.<ext>` (ext: any of antispoof.audio.AUDIO_EXTENSIONS) if present (taken whole), else
    concatenates the speaker's neutral utterances under `root/<speaker>/` (other emotions only if there is no
    neutral folder), in name order, until `seconds` are collected. Upstream merged a speaker's ESD clips the same way.
    """
    root = Path(root)
    for suffix in AUDIO_EXTENSIONS:
        single = root / f"{speaker}{suffix}"
        if single.is_file():
            return load_audio_16k(single)
    speaker_dir = root / speaker
    if not speaker_dir.is_dir():
        raise FileNotFoundError(
            f"{root}: no reference audio for speaker {speaker!r} ({speaker}.wav or {speaker}/)"
        )
    emotion_dirs = [p for p in sorted(speaker_dir.iterdir()) if p.is_dir() and normalize_emotion(p.name)]
    neutral = [p for p in emotion_dirs if normalize_emotion(p.name) == "neutral"]
    files = [f for d in (neutral or emotion_dirs or [speaker_dir]) for f in _audio_files(d)]
    if not files:
        raise FileNotFoundError(f"{speaker_dir}: no audio files for speaker {speaker!r}")
    pieces, total = [], 0
    for path in files:
        pieces.append(load_audio_16k(path))
        total += pieces[-1].size
        if total >= seconds * SAMPLE_RATE:
            break
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]


def reference_speakers(root: str | Path) -> list[str]:
    """Speakers with reference audio under `root`: a `<speaker>/` folder or a `<speaker>.<audio>` file."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: reference audio folder not found")
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names |= {p.stem for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS}
    return sorted(names)


# -------------------------------------------------------------------------------------------- manifest
def read_manifest(path: str | Path) -> list[dict]:
    """Rows of a manifest CSV (all values as strings)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a DSES manifest (missing columns {sorted(missing)})")
        return list(reader)


def write_manifest_atomic(path: Path, rows: Iterable[dict]) -> None:
    """Write the manifest sorted by path, via a temporary file and a rename (never half-written)."""
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["path"]):
            writer.writerow({name: row.get(name, "") for name in MANIFEST_FIELDS})


# -------------------------------------------------------------------------------------------- the run
@dataclass
class Job:
    """One file to make."""

    id: str
    text: str
    speaker: str
    emotion: str
    reference_path: Path | None = None  # the bona fide utterance, for copy synthesis

    @property
    def relative_path(self) -> str:
        return f"{self.speaker}/{self.emotion}/{self.id}.flac"


@dataclass
class SynthesisReport:
    """What a run did. `failed` lists (relative path, error message)."""

    system_dir: Path
    manifest_path: Path
    planned: int = 0
    made: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.system_dir}: {self.made} made, {self.skipped} already there, {len(self.failed)} failed "
            f"of {self.planned} planned, in {self.seconds:.1f} s; manifest {self.manifest_path}"
        )


def plan_text_jobs(
    lines: Sequence[TextLine],
    speakers: Sequence[str],
    emotions: Sequence[str] | None,
    per_line_emotion: bool = False,
) -> list[Job]:
    """The files to make from sentences.

    Default: every sentence in every emotion of `emotions` (all five if None) for every speaker. Where the
    file gives emotions (ESD transcripts list each sentence once per emotion), a sentence is rendered once
    per emotion, under the id of its first line (ESD's neutral block comes first, as upstream used it).
    With `per_line_emotion`, each line is rendered only in its own emotion (optionally filtered by
    `emotions`), which reproduces a transcript's emotion labels.
    """
    chosen = [require_emotion(e) for e in emotions] if emotions else list(EMOTIONS)
    jobs: list[Job] = []
    if per_line_emotion:
        for line in lines:
            if line.emotion is None:
                raise ValueError(f"per-line emotion asked for, but line {line.id!r} has no emotion column")
            if line.emotion in chosen:
                jobs.extend(Job(line.id, line.text, s, line.emotion) for s in speakers)
        return jobs
    seen_texts: set[str] = set()
    unique: list[TextLine] = []
    for line in lines:
        key = " ".join(line.text.split()).lower()
        if line.emotion is not None and key in seen_texts:
            continue
        seen_texts.add(key)
        unique.append(line)
    for speaker in speakers:
        for emotion in chosen:
            jobs.extend(Job(line.id, line.text, speaker, emotion) for line in unique)
    return jobs


def _existing_row(system_dir: Path, job: Job, system: str, backend: Backend, seed: int) -> dict:
    """A manifest row for a file made earlier whose row was lost (a run killed before it saved)."""
    return _row(job, system, backend, seed, _duration(system_dir / job.relative_path))


def _row(job: Job, system: str, backend: Backend, seed: int | str, duration: float) -> dict:
    settings = {**backend.settings(), **backend.item_settings(job.speaker, job.emotion)}
    return {
        "path": job.relative_path,
        "id": job.id,
        "speaker": job.speaker,
        "emotion": job.emotion,
        "system": system,
        "text": job.text,
        "backend": backend.name,
        "settings": json.dumps(settings, sort_keys=True),
        "seed": seed,
        "duration": f"{duration:.4f}",
    }


def _orphan_row(system_dir: Path, relative: str, system: str) -> dict:
    """A row for a file of an earlier run that is neither in the manifest nor in this run's plan."""
    speaker, emotion, name = relative.split("/")
    return {
        "path": relative,
        "id": name[: -len(".flac")],
        "speaker": speaker,
        "emotion": emotion,
        "system": system,
        "text": "",
        "backend": "",
        "settings": "{}",
        "seed": "",
        "duration": f"{_duration(system_dir / relative):.4f}",
    }


def _duration(path: Path) -> float:
    try:
        return sf.info(str(path)).duration
    except Exception as error:  # soundfile raises several types for unreadable files
        raise ValueError(
            f"{path}: unreadable audio in the output folder ({error}); delete it and re-run"
        ) from None


def _files_on_disk(system_dir: Path) -> set[str]:
    return {p.relative_to(system_dir).as_posix() for p in system_dir.glob("*/*/*.flac") if p.is_file()}


def synthesize_corpus(
    backend: str | Backend,
    texts,
    out_dir: str | Path,
    speakers: Sequence[str] | None = None,
    emotions: Sequence[str] | None = None,
    *,
    reference_audio: str | Path | None = None,
    system: str | None = None,
    seed: int = 0,
    per_line_emotion: bool = False,
    reference_seconds: float | None = None,
    progress: bool = True,
    backend_options: dict | None = None,
) -> SynthesisReport:
    """Render a corpus into `out_dir/<System>/<speaker>/<emotion>/<id>.flac` and its manifest.

    Args:
        backend: a registry name ("espeak", "vocoder", "zonos", "cosyvoice", "emospeech") or a Backend.
        texts: a text file, a list of sentences, or of (id, text[, emotion]); see `plan_text_jobs`. For the
            vocoder (copy synthesis) optional: it only supplies texts by id for the manifest.
        out_dir: the DSES root; the system folder is created inside it.
        speakers: speaker names. Default: those with reference audio, or the back-end's defaults.
        emotions: subset of neutral, happy, angry, sad, surprise (any spelling). Default: all five.
        reference_audio: a folder of bona fide speech, `<speaker>/<emotion>/...` (this tool's or ESD's
            layout) or `<speaker>.wav`: the speaker's voice for zonos / cosyvoice, the utterances to copy
            for the vocoder.
        system: system folder name. Default: the back-end's (e.g. "Zonos", "GL-nfft512-hop128-mels80-it32").
        seed: base seed; each file's seed is derived from it and (speaker, emotion, id), so a file's
            rendering does not depend on which others a run makes.
        per_line_emotion: render each text line only in its own emotion (third column).
        reference_seconds: how much of a speaker's speech to pass as its reference (zonos 20 s,
            cosyvoice 8 s by default).
        progress: show a tqdm progress bar.
        backend_options: keyword options for the back-end when `backend` is a name.

    Returns a SynthesisReport; single failures are recorded there (and in failures.txt), not raised.
    """
    started = time.monotonic()
    if isinstance(backend, str):
        backend = get_backend(backend, **(backend_options or {}))
    elif backend_options:
        raise ValueError("backend_options are for a back-end given by name")
    system = check_name("system", system or backend.system)
    reference_root = Path(reference_audio) if reference_audio is not None else None
    jobs = _plan_jobs(backend, as_text_lines(texts), reference_root, speakers, emotions, per_line_emotion)

    system_dir = Path(out_dir) / system
    system_dir.mkdir(parents=True, exist_ok=True)
    report = SynthesisReport(system_dir, system_dir / MANIFEST_NAME, planned=len(jobs))
    rows, todo = _resume(system_dir, jobs, system, backend, seed, report)
    seconds = reference_seconds or DEFAULT_REFERENCE_SECONDS.get(backend.name, 10.0)
    speaker_references = {}
    if backend.reference == "speaker":
        for speaker in sorted({job.speaker for job in todo}):
            speaker_references[speaker] = speaker_reference_audio(reference_root, speaker, seconds)
    try:
        _render_all(todo, backend, system, seed, speaker_references, rows, report, progress)
    finally:
        _write_results(report, rows)
        report.seconds = time.monotonic() - started
    return report


def _plan_jobs(backend, lines, reference_root, speakers, emotions, per_line_emotion) -> list[Job]:
    """What to render: every reference utterance (copy synthesis) or every text x speaker x emotion."""
    if backend.reference == "utterance":
        if reference_root is None:
            raise ValueError(f"the '{backend.name}' back-end copies bona fide audio: give reference_audio")
        utterances = scan_reference_corpus(reference_root, speakers, emotions, lines)
        jobs = [Job(u.id, u.text, u.speaker, u.emotion, u.path) for u in utterances]
    else:
        if not lines:
            raise ValueError(f"the '{backend.name}' back-end needs texts")
        if speakers:
            speakers = list(speakers)
        elif backend.reference == "speaker" and reference_root is not None:
            speakers = reference_speakers(reference_root)
        else:
            speakers = list(backend.default_speakers)
        if not speakers:
            raise ValueError(f"no speakers given for the '{backend.name}' back-end")
        if backend.reference == "speaker" and reference_root is None:
            raise ValueError(
                f"the '{backend.name}' back-end clones each speaker's voice: give reference_audio"
            )
        jobs = plan_text_jobs(lines, speakers, emotions, per_line_emotion)
    for job in jobs:
        check_name("speaker", job.speaker)
        check_name("utterance id", job.id)
    return jobs


def _resume(
    system_dir: Path, jobs, system: str, backend, seed: int, report
) -> tuple[dict[str, dict], list[Job]]:
    """The manifest rows of files already made (kept) and the jobs still to do; the manifest is rewritten."""
    for stale in system_dir.glob(f"*/*/*{PARTIAL_SUFFIX}"):  # left by a run killed mid-write
        stale.unlink()
    on_disk = _files_on_disk(system_dir)
    rows: dict[str, dict] = {}
    if report.manifest_path.is_file():
        rows = {row["path"]: row for row in read_manifest(report.manifest_path) if row["path"] in on_disk}
    todo: list[Job] = []
    planned_paths: set[str] = set()
    for job in jobs:
        if job.relative_path in planned_paths:
            continue
        planned_paths.add(job.relative_path)
        if job.relative_path not in on_disk:
            todo.append(job)
            continue
        report.skipped += 1
        if job.relative_path not in rows:
            item_seed = stable_seed(seed, job.speaker, job.emotion, job.id)
            rows[job.relative_path] = _existing_row(system_dir, job, system, backend, item_seed)
    for relative in on_disk - set(rows):
        rows[relative] = _orphan_row(system_dir, relative, system)
    report.planned = len(planned_paths)
    write_manifest_atomic(report.manifest_path, rows.values())
    return rows, todo


def _render_one(
    job: Job, backend, system: str, seed: int, speaker_references: dict, system_dir: Path
) -> dict:
    item_seed = stable_seed(seed, job.speaker, job.emotion, job.id)
    if job.reference_path is not None:
        reference = load_audio_16k(job.reference_path)
    else:
        reference = speaker_references.get(job.speaker)
    seed_everything(item_seed)
    audio = backend.synthesize(job.text, job.speaker, job.emotion, reference_audio=reference, seed=item_seed)
    audio = resample_to_16k(to_mono_float32(audio, f"{backend.name} output"), backend.sample_rate)
    row = _row(job, system, backend, item_seed, audio.size / SAMPLE_RATE)  # before the file exists
    write_flac_atomic(system_dir / job.relative_path, audio)
    return row


def _render_all(todo, backend, system, seed, speaker_references, rows, report, progress) -> None:
    """Render each job; one failure is recorded and the run goes on; the manifest is saved now and then."""
    last_write = time.monotonic()
    bar = _progress_bar(len(todo), f"{system}", progress)
    try:
        for job in todo:
            try:
                row = _render_one(job, backend, system, seed, speaker_references, report.system_dir)
            except Exception as error:  # one bad sentence must not end a long run
                report.failed.append((job.relative_path, f"{type(error).__name__}: {error}"))
            else:
                rows[job.relative_path] = row
                report.made += 1
            bar.update(1)
            if time.monotonic() - last_write > MANIFEST_WRITE_INTERVAL_S:
                write_manifest_atomic(report.manifest_path, rows.values())
                last_write = time.monotonic()
    finally:
        bar.close()


def _write_results(report, rows: dict) -> None:
    write_manifest_atomic(report.manifest_path, rows.values())
    failures_path = report.system_dir / "failures.txt"
    if report.failed:
        failures_path.write_text("".join(f"{path}\t{message}\n" for path, message in report.failed))
    elif failures_path.exists():
        failures_path.unlink()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="utt")


# ------------------------------------------------------------------------------------------------ CLI
def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Generate an emotional speech corpus in the DSES layout "
        "(<System>/<speaker>/<emotion>/<id>.flac).",
        epilog="Text file format, back-ends and their options: DSES/README.md",
    )
    parser.add_argument("--backend", required=True, help="zonos, cosyvoice, emospeech, espeak or vocoder")
    parser.add_argument(
        "--texts", help="text file: 'id<TAB>text<TAB>emotion' (ESD), 'id<TAB>text' or one sentence a line"
    )
    parser.add_argument("--out", required=True, help="DSES root; files go to OUT/<System>/...")
    parser.add_argument(
        "--speakers", nargs="+", help="speaker names (default: those in --reference_audio, or the back-end's)"
    )
    parser.add_argument("--emotions", nargs="+", help=f"subset of {' '.join(EMOTIONS)} (default: all)")
    parser.add_argument(
        "--reference_audio", help="bona fide speech: <speaker>/<emotion>/<id>.* (this tool's or ESD's layout)"
    )
    parser.add_argument("--system", help="system folder name (default: the back-end's)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--per_line_emotion", action="store_true", help="render each line only in its own emotion"
    )
    parser.add_argument(
        "--reference_seconds", type=float, help="seconds of a speaker's speech used as its reference"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        type=_parse_option,
        metavar="KEY=VALUE",
        help="back-end option, repeatable (e.g. --option n_fft=1024 --option repo_dir=/path/emospeech)",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(
            f"error: --out {args.out}: exists and is not a folder (the DSES root to write into)",
            file=sys.stderr,
        )
        return 2
    try:
        report = synthesize_corpus(
            args.backend,
            args.texts,
            args.out,
            args.speakers,
            args.emotions,
            reference_audio=args.reference_audio,
            system=args.system,
            seed=args.seed,
            per_line_emotion=args.per_line_emotion,
            reference_seconds=args.reference_seconds,
            progress=not args.no_progress,
            backend_options=dict(args.option),
        )
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.failed:
        print(f"{len(report.failed)} failed (also in {report.system_dir / 'failures.txt'}):", file=sys.stderr)
        for path, message in report.failed:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
