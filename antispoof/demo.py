"""The embedded demo: a small synthetic corpus, built on first run, on which `main.py` trains and evaluates.

    python main.py --config config/demo.conf     # builds ./demo_data on first run, then trains and evaluates

No human speech can be fetched at run time, so the corpus is a stand-in made offline by `DSES/`:

* bona fide: eSpeak NG renderings (`espeak` back-end) of the demo sentences by several "speakers" (eSpeak
  voices) in five emotional prosodies;
* spoof: copy-syntheses of each of those recordings by two vocoder settings (`vocoder` back-end): mel +
  Griffin-Lim with 32 iterations (fine) and with a coarser analysis and 8 iterations (coarse). Words,
  speaker, emotion and timing are the bona fide recording's; only the vocoder's artefacts differ, which is
  the detection task.

Layout under the config's ``demo.root`` (default ``./demo_data``):

    synthesis/<System>/<speaker>/<emotion>/<id>.flac + manifest.csv   every speaker (the synthesiser's output)
    LA/    ASVspoof 2019 LA layout (protocols + flac), speaker-disjoint train/dev/eval (`export_la_layout`)
    DSES/  ESD/<speaker>/<emotion>/..., <System>/<speaker>/<emotion>/...: the LA eval speakers only, so the
           per-emotion table is computed on speakers never seen in training (hard links, no extra space)
    README.md                     what the data is
    .demo_started.json            the settings of the build, written first
    .demo_complete.json           the same, written last (atomically): the corpus is complete

No ASV score files are written: the t-DCF needs the organisers' ASV scores, and invented ones would give a
number that looks like a result but measures nothing; `main.py` then reports EER only.

Building is idempotent: with the marker present and the same settings nothing is done; an interrupted build
resumes (existing audio is kept by `synthesize_corpus`, existing links by `export_la_layout`).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

from antispoof.fileio import link_or_copy, write_text_atomically
from antispoof.protocols import BONAFIDE_SYSTEM_DIR
from antispoof.scorefiles import read_asvspoof_protocol

REPO_DIR = Path(__file__).resolve().parents[1]
DEMO_TEXTS = REPO_DIR / "DSES" / "demo_texts.txt"
MARKER_NAME = ".demo_complete.json"
STARTED_NAME = ".demo_started.json"  # the recipe of a build under way (so a resume cannot mix two)
MARKER_VERSION = 1
# fewer eval speakers than this and the speaker bootstrap of the DSES confidence intervals has too few distinct
# resamples (2 speakers: 3) for its intervals to mean anything
MIN_EVAL_SPEAKERS = 5

DEFAULT_SETTINGS = {
    "root": "./demo_data",
    # numeric names map to ten different eSpeak voices (DSES/backends/espeak.py: voice int(name) % 10)
    "speakers": [str(n) for n in range(1001, 1011)],
    "sentences": 4,
    "texts": None,  # None: the bundled DSES/demo_texts.txt
    "seed": 0,
    # train, dev, eval shares of the speakers: 10 speakers -> 4, 1, 5; the eval split (which is also the DSES
    # part) needs MIN_EVAL_SPEAKERS for the per-speaker bootstrap of the DSES tables to mean something
    "split_fractions": [0.4, 0.1, 0.5],
    # one vocoder setting per spoof system (DSES/backends/vocoder.py options)
    "spoof_systems": [
        {"n_fft": 512, "hop_length": 128, "n_mels": 80, "n_iter": 32},
        {"n_fft": 1024, "hop_length": 256, "n_mels": 40, "n_iter": 8},
    ],
}

README_TEXT = """\
# Demo corpus (synthetic: its numbers say nothing about real detectors)

Built by `demo.py` for `python main.py --config config/demo.conf`. Nothing here is human speech.

- Bona fide (`synthesis/ESD`, `DSES/ESD`, protocol key `bonafide`): eSpeak NG formant-synthesis renderings
  of the sentences in DSES/demo_texts.txt, one eSpeak voice per "speaker", each sentence in five emotional
  prosodies set by rule (rate, pitch level, pitch range, volume). A stand-in for bona fide speech only.
- Spoof (every other system folder; LA attacks A01, A02, ...): copy-syntheses of those recordings with a
  mel spectrogram + Griffin-Lim vocoder at two settings. Same words, speaker, emotion and timing; only the
  vocoder's artefacts differ.
- `LA/`: the same files in the ASVspoof 2019 LA layout, speakers disjoint between train, dev and eval.
  `LA/la_index.csv` maps every LA_* id back to its system, speaker, emotion and sentence.
- `DSES/`: the LA eval speakers only, in the DSES layout, for the per-emotion / per-system table.
- No ASV score files: a t-DCF needs the organisers' ASV scores, so the demo reports EER only.

The task (formant speech vs. its Griffin-Lim copies) is small and far easier and narrower than real
anti-spoofing; the EERs obtained on it show that the pipeline runs end to end, nothing more.

Settings: {settings}
"""


class DemoConfigError(ValueError):
    """The config's "demo" section is unusable."""


def demo_settings(config: dict) -> dict:
    """The config's "demo" section over the defaults, checked."""
    section = config.get("demo") or {}
    if not isinstance(section, dict):
        raise DemoConfigError(f'config "demo" must be an object, got {type(section).__name__}')
    unknown = sorted(set(section) - set(DEFAULT_SETTINGS))
    if unknown:
        raise DemoConfigError(
            f'config "demo" has unknown keys {unknown}; known: {", ".join(sorted(DEFAULT_SETTINGS))}'
        )
    settings = json.loads(json.dumps({**DEFAULT_SETTINGS, **section}))  # a deep, JSON-normal copy
    speakers = settings["speakers"]
    if not isinstance(speakers, list) or len(set(map(str, speakers))) < 3:
        raise DemoConfigError(
            'config "demo.speakers" needs at least three distinct speakers (train/dev/eval)'
        )
    settings["speakers"] = [str(s) for s in speakers]
    if not isinstance(settings["sentences"], int) or settings["sentences"] < 1:
        raise DemoConfigError(
            f'config "demo.sentences" must be a positive integer, got {settings["sentences"]}'
        )
    if not settings["spoof_systems"] or not all(isinstance(s, dict) for s in settings["spoof_systems"]):
        raise DemoConfigError(
            'config "demo.spoof_systems" must be a non-empty list of vocoder option objects'
        )
    return settings


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _same_place(a: str | os.PathLike, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


def _warn_if_unused(config: dict, root: Path) -> None:
    """The demo is useless if the config reads its data elsewhere: say so (never write there)."""
    for key, expected in (("database_path", root / "LA"), ("emo_dataset", root / "DSES")):
        value = config.get(key)
        if value is not None and not _same_place(value, expected):
            _say(
                f"note: {key} is {value}, not the demo's {expected}: the demo corpus will not be used for it"
            )


def _check_build(report, what: str) -> None:
    if report.failed:
        first = "; ".join(f"{path}: {error}" for path, error in report.failed[:3])
        raise SystemExit(
            f"error: demo corpus: {len(report.failed)} {what} utterances failed ({first}); "
            "run again to retry them (finished files are kept)"
        )


def _build_dses_eval_part(la_index: Path, dses_root: Path) -> int:
    """Link the LA eval split's files into the DSES layout: <System>/<speaker>/<emotion>/<id>.flac."""
    with la_index.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "eval"]
    for row in rows:
        source = Path(row["source"])
        link_or_copy(source, dses_root / row["system"] / row["speaker"] / row["emotion"] / source.name)
    return len(rows)


def _record(recipe: dict) -> str:
    return json.dumps(
        {"version": MARKER_VERSION, "when": time.strftime("%Y-%m-%d %H:%M:%S"), **recipe}, indent=2
    )


def _recorded_recipe(path: Path) -> dict | None:
    """The recipe a marker file records (None if unreadable or of another version)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.pop("version", None) != MARKER_VERSION:
        return None
    recorded.pop("when", None)
    return recorded


def _check_splits(protocols: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """(bona fide, spoof) trials per split; every split needs both for training, selection and the EER."""
    counts = {}
    for split in ("train", "dev", "eval"):
        keys = [entry.key for entry in read_asvspoof_protocol(protocols[split])]
        counts[split] = (keys.count("bonafide"), keys.count("spoof"))
        if not all(counts[split]):
            raise SystemExit(
                f"error: demo corpus: the {split} split has {counts[split][0]} bona fide and {counts[split][1]} "
                f"spoof trials; give more speakers or other demo.split_fractions"
            )
    return counts


def _eval_speaker_note(eval_protocol: Path) -> str | None:
    """A warning when the eval split has too few speakers for the speaker bootstrap; None when it has enough."""
    speakers = {entry.speaker for entry in read_asvspoof_protocol(eval_protocol)}
    if len(speakers) >= MIN_EVAL_SPEAKERS:
        return None
    return (
        f"note: the eval split has {len(speakers)} speaker(s), fewer than {MIN_EVAL_SPEAKERS}: the DSES confidence "
        "intervals (a bootstrap over speakers) say little; give more speakers or a larger eval share in "
        "demo.split_fractions"
    )


def _already_built(root: Path, recipe: dict) -> bool:
    """True when a complete corpus of this recipe is in place; an error when ``root`` holds another recipe's."""
    marker, started_file = root / MARKER_NAME, root / STARTED_NAME
    if marker.is_file():
        if _recorded_recipe(marker) == recipe:
            return True
        raise SystemExit(
            f"error: {root} holds a demo corpus built with other settings ({marker}); delete {root} to rebuild "
            'it, or set "demo.root" to another folder'
        )
    if started_file.is_file() and _recorded_recipe(started_file) != recipe:
        # resuming would mix the files of two recipes (e.g. speakers no longer listed would stay in)
        raise SystemExit(
            f"error: {root} holds an unfinished demo corpus begun with other settings ({started_file}); "
            f'delete {root}, or set "demo.root" to another folder'
        )
    return False


def _demo_texts(settings: dict) -> list:
    from DSES.synthesize import read_texts

    texts_path = settings["texts"] or DEMO_TEXTS
    try:
        texts = read_texts(texts_path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: demo texts: {exc}") from None
    if len(texts) < settings["sentences"]:
        raise SystemExit(
            f"error: {texts_path}: {len(texts)} sentences, fewer than demo.sentences = {settings['sentences']}"
        )
    return texts[: settings["sentences"]]


def _synthesize(settings: dict, texts: list, synthesis: Path):
    """The bona fide eSpeak renderings and one vocoder copy-synthesis per spoof system."""
    from DSES.backends import get_backend
    from DSES.synthesize import synthesize_corpus

    seed, progress = settings["seed"], sys.stderr.isatty()
    step = time.monotonic()
    bonafide = synthesize_corpus(
        "espeak",
        texts,
        synthesis,
        speakers=settings["speakers"],
        system=BONAFIDE_SYSTEM_DIR,
        seed=seed,
        progress=progress,
    )
    _check_build(bonafide, "eSpeak")
    _say(
        f"bona fide (eSpeak NG): {bonafide.made} made, {bonafide.skipped} kept ({time.monotonic() - step:.0f} s)"
    )
    spoof_dirs = []
    for options in settings["spoof_systems"]:
        step = time.monotonic()
        vocoder = get_backend("vocoder", **options)
        spoof = synthesize_corpus(
            vocoder, texts, synthesis, reference_audio=bonafide.system_dir, seed=seed, progress=progress
        )
        _check_build(spoof, vocoder.system)
        spoof_dirs.append(spoof.system_dir)
        _say(
            f"spoof {vocoder.system}: {spoof.made} made, {spoof.skipped} kept ({time.monotonic() - step:.0f} s)"
        )
    return bonafide.system_dir, spoof_dirs


def _export_layouts(settings: dict, root: Path, bonafide_dir: Path, spoof_dirs: list[Path]) -> None:
    from DSES.la_layout import export_la_layout

    written = export_la_layout(
        bonafide_dir,
        spoof_dirs,
        root / "LA",
        split_fractions=settings["split_fractions"],
        split_by="speaker",
        seed=settings["seed"],
    )
    counts = _check_splits(written)
    _say(
        "ASVspoof 2019 LA layout (speaker-disjoint): "
        + ", ".join(f"{split} {b + s} trials ({b} bona fide)" for split, (b, s) in counts.items())
        + " (no ASV scores: EER only)"
    )
    note = _eval_speaker_note(written["eval"])
    if note:
        _say(note)
    n_dses = _build_dses_eval_part(written["index"], root / "DSES")
    _say(f"DSES layout: {n_dses} files of the LA eval speakers in {root / 'DSES'}")


def ensure_demo_corpus(config: dict) -> None:
    """Build the demo corpus described by ``config["demo"]`` unless a complete one is already in place."""
    try:
        settings = demo_settings(config)
    except DemoConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    root = Path(settings["root"])
    # what the files depend on: everything but where they are (a moved folder stays valid)
    recipe = {key: value for key, value in settings.items() if key != "root"}
    if _already_built(root, recipe):
        _say(f"corpus ready in {root}")
        return
    _warn_if_unused(config, root)
    started = time.monotonic()
    texts = _demo_texts(settings)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomically(root / STARTED_NAME, _record(recipe))
    speakers = settings["speakers"]
    _say(
        f"building the synthetic demo corpus in {root} (first run only): {len(speakers)} speakers x "
        f"{len(texts)} sentences x 5 emotions = {len(speakers) * len(texts) * 5} bona fide utterances, "
        f"{len(settings['spoof_systems'])} copy-synthesis spoofs of each"
    )
    bonafide_dir, spoof_dirs = _synthesize(settings, texts, root / "synthesis")
    _export_layouts(settings, root, bonafide_dir, spoof_dirs)
    write_text_atomically(root / "README.md", README_TEXT.format(settings=json.dumps(settings)))
    write_text_atomically(
        root / MARKER_NAME, _record(recipe)
    )  # last: its presence means the corpus is complete
    _say(f"corpus ready in {time.monotonic() - started:.0f} s")
