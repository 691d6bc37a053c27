"""What every eval-set reader returns: the trials of a set in its published layout, the attribute columns its
results break down by, and which metrics apply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from antispoof.metadata import TrialTable
from antispoof.protocols import ProtocolError, Trial

TRIAL_FIELDS = ("system", "emotion")  # attributes held by Trial itself; every other one lives in Trial.extra


@dataclass
class EvalSet:
    """A read evaluation set. ``attributes`` name the columns the breakdown groups by; ``metrics`` says what
    applies (``eer`` always; ``official_2021`` adds the eval-package's per-condition table, with the min t-DCF
    where ``asv`` holds the organisers' ASV data)."""

    name: str
    trials: list[Trial]
    attributes: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("eer",)
    asv: dict | None = None  # {"metadata": Path, "scores": Path} for the 2021 LA t-DCF
    reference_group: str | None = None  # the group others are tested against (emotional sets: neutral)
    official_factors: tuple = ()  # the two axes of the eval-package's table (asvspoof2021.Factor)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reader:
    """One supported set: how to read it and what the README table says about it."""

    name: str
    read: Callable[[Path], EvalSet]
    what: str
    size: str
    licence: str
    get: str
    metrics: str


def attribute(trial: Trial, name: str) -> str:
    value = getattr(trial, name) if name in TRIAL_FIELDS else trial.extra.get(name)
    return "-" if value is None else str(value)


def trial_table(evalset: EvalSet) -> TrialTable:
    """The set's trials as a table: utt_id, speaker, key and every attribute column."""
    columns = {
        "utt_id": [t.utt_id for t in evalset.trials],
        "speaker": [t.speaker for t in evalset.trials],
        "key": [t.key for t in evalset.trials],
    }
    for name in evalset.attributes:
        columns[name] = [attribute(t, name) for t in evalset.trials]
    return TrialTable.from_columns(columns, evalset.name)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ProtocolError(f"{path}: {what} folder not found")
    return path


def first_existing(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that exists; else one line naming them all."""
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    raise ProtocolError(f"{root}: no {what} (looked for {', '.join(candidates)})")


def split_line(path: Path, number: int, line: str, n_fields: int) -> list[str]:
    """The whitespace-separated fields of a protocol line; a wrong count names the file and the line."""
    fields = line.split()
    if len(fields) < n_fields:
        raise ProtocolError(
            f"{path}:{number}: expected {n_fields} fields, got {len(fields)}: {line.strip()!r}"
        )
    return fields


def protocol_lines(path: Path):
    """``(line number, text)`` of the non-empty lines of a text protocol."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError(f"{path}: protocol file not found") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{path}: not a text file ({exc})") from None
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def check_key(path: Path, number: int, key: str, allowed: Sequence[str] = ("bonafide", "spoof")) -> str:
    if key not in allowed:
        raise ProtocolError(f"{path}:{number}: key {key!r} is not one of {', '.join(allowed)}")
    return key
