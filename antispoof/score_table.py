"""The score table ``inference.py`` writes: a header line, then one tab-separated row per scored file.

Columns: ``path`` (relative to the scored folder, or the file name), ``score`` (the bona fide logit, higher = more
bona fide) and, when a threshold is known, ``decision`` (``bonafide`` if score >= threshold, else ``spoof``).
A field holding a tab, a newline, a carriage return or a double quote is written in double quotes with inner
quotes doubled (the CSV convention), so any file name survives: read the table with
``csv.reader(open(F, newline=""), delimiter="\\t")`` or ``pandas.read_csv(F, sep="\\t")``. Every other field is
written as is, so ``cut -f2`` works on ordinary names.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from antispoof.errors import first_line
from antispoof.fileio import atomic_open

HEADER_START = ("path", "score")
BONAFIDE_DECISION, SPOOF_DECISION = "bonafide", "spoof"


@dataclass(frozen=True)
class ScoredFile:
    name: str  # as shown in the ``path`` column
    score: float  # the bona fide logit


Column = tuple[str, Callable[[ScoredFile], str]]  # (header, cell of a row)


def decide(score: float, threshold: float) -> str:
    return BONAFIDE_DECISION if score >= threshold else SPOOF_DECISION


def score_columns(threshold: float | None = None, calibration=None) -> list[Column]:
    """The table's columns: path and score; with a calibration the LLR and the Bayes decision of the ASVspoof 5
    cost model; else, with a threshold, the decision at that threshold."""
    from antispoof.calibration import apply_calibration, decision_labels

    columns: list[Column] = [("path", lambda row: row.name), ("score", lambda row: repr(float(row.score)))]
    if calibration is not None:
        llr = lambda row: float(apply_calibration(calibration, [row.score])[0])  # noqa: E731
        columns.append(("llr", lambda row: repr(llr(row))))
        columns.append(("decision", lambda row: decision_labels([llr(row)])[0]))
    elif threshold is not None:
        columns.append(("decision", lambda row: decide(row.score, threshold)))
    return columns


def decision_columns(
    threshold: float | None, calibration_path: str | None, weights: str
) -> tuple[list[Column], str]:
    """The columns inference.py writes and a note saying how decisions are made: ``--calibration`` (LLR and Bayes
    decision), else ``--threshold``, else the training run's stored dev EER threshold, else no decision."""
    from antispoof.calibration import CalibrationError, load_calibration

    if calibration_path:
        try:
            calibration = load_calibration(calibration_path)
        except CalibrationError as exc:
            raise SystemExit(f"error: --calibration {exc}") from None
        return score_columns(
            calibration=calibration
        ), f"decisions at the Bayes threshold of {calibration_path}"
    if threshold is not None:
        return score_columns(threshold), f"decisions at --threshold {threshold}"
    stored, note = stored_dev_eer_threshold(weights)
    return score_columns(stored), note


def _field(text: str) -> str:
    """CSV quoting by hand: ``csv.writer`` with a "\\n" line terminator leaves a carriage return unquoted."""
    if any(char in text for char in '\t\n\r"'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_score_table(path: str | os.PathLike, rows: Iterable[ScoredFile], columns: list[Column]) -> None:
    """Write the table atomically (UTF-8; undecodable bytes of a file name are written back as they were)."""
    lines = ["\t".join(name for name, _ in columns)]
    lines += ["\t".join(_field(cell(row)) for _, cell in columns) for row in rows]
    with atomic_open(path, "w", newline="", errors="surrogateescape") as handle:
        handle.write("".join(line + "\n" for line in lines))


def read_score_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a score table, as {column: text}."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def output_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot take a score table, checked before any scoring; None when it can.

    It may be new (missing folders are created), or an earlier score table (its first line starts with the
    ``path<TAB>score`` header), which is replaced. A folder, a place below a file or an unwritable folder, and an
    existing file of any other kind (never overwritten: it may be audio or someone's results) are refused.
    """
    path = Path(path)
    if path.is_dir():
        return f"{path}: is a folder; give a file name"
    if path.exists():
        if not path.is_file():
            return f"{path}: is not a regular file; give a file name"
        header = "\t".join(HEADER_START).encode()
        try:
            with open(path, "rb") as handle:
                start = handle.read(len(header))
        except OSError as exc:
            return f"{path}: cannot be read to check what it holds ({first_line(exc)})"
        if start and start != header:
            return (
                f"{path}: exists and is not a score table of inference.py; remove it or choose another name"
            )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{path}: cannot write in {folder} (permission denied)"
    return None


def stored_dev_eer_threshold(weights: str | os.PathLike) -> tuple[float | None, str]:
    """The ``dev_eer_threshold`` of the training run that wrote ``weights`` (``<exp>/weights/<name>.pth`` ->
    ``<exp>/metrics.json``), and a note saying where it came from or why there is none."""
    weights = Path(weights)
    metrics = weights.parent.parent / "metrics.json"
    if weights.parent.name != "weights" or not metrics.is_file():
        return None, "no threshold: give --threshold T for a bonafide/spoof decision column"
    try:
        stored = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{metrics}: unreadable ({first_line(exc)}): no decision column; give --threshold T"
    value = stored.get("dev_eer_threshold") if isinstance(stored, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, f"{metrics}: no numeric dev_eer_threshold: no decision column; give --threshold T"
    return float(value), f"decision threshold {float(value)!r}: the dev EER threshold stored in {metrics}"
