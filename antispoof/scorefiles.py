"""Score files and ASVspoof protocols: reading, writing and checking them against each other.

* CM score file (official format, one trial per line in protocol order): ``UTT_ID SYSTEM KEY SCORE``
  (SYSTEM ``-`` for bona fide or the attack / TTS system; KEY ``bonafide`` or ``spoof``).
* ASV score file of the organisers: ``SOURCE KEY SCORE`` with KEY ``target|nontarget|spoof``.
* ASVspoof 2019 CM protocol: ``SPEAKER UTT_ID - SYSTEM KEY``.

Every error is one line naming the file (and the line where there is one). Only numpy is imported.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from antispoof.fileio import write_text_atomically
from antispoof.metrics import ASVScores

VALID_CM_KEYS = ("bonafide", "spoof")
VALID_ASV_KEYS = ("target", "nontarget", "spoof")


class EvaluationInputError(ValueError):
    """A score or protocol file (or array) cannot be used; the message names the file and line."""


class ScoreProtocolMismatch(ValueError):
    """A score file does not cover exactly the trials of its protocol (or lists a trial twice)."""


class DuplicateTrialId(ScoreProtocolMismatch):
    """A score file lists the same trial id more than once (which would silently change every metric)."""


class ProtocolEntry(NamedTuple):
    """One ASVspoof protocol line; a tuple ``(speaker, utt_id, system, key)`` with named fields."""

    speaker: str
    utt_id: str
    system: str
    key: str


# --------------------------------------------------------------------------------------------------
# reading helpers
# --------------------------------------------------------------------------------------------------
def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a file, or an :class:`EvaluationInputError` naming the file and ``what`` it is."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(f"{path}: {what} is not UTF-8 text ({exc.reason})") from None


def _read_columns(path: str | os.PathLike, what: str, layout: str) -> list[list[str]]:
    """Columns of a whitespace-separated table with exactly ``len(layout.split())`` fields per non-blank line.

    Fast on the 71k-line ASVspoof files: the whole text is split once and columns are strided slices of the
    tokens, so no per-row lists or tuples are built (they would also wake the cyclic garbage collector over
    and over); lines are split only to check their field counts, and a bad line is located only if there
    is one.
    """
    text = read_text(path, what)
    n_fields = len(layout.split())
    lines = text.splitlines()
    field_counts = set(map(len, map(str.split, lines)))
    if field_counts - {n_fields, 0}:
        lineno, line = next(
            (i, line) for i, line in enumerate(lines, 1) if len(line.split()) not in (0, n_fields)
        )
        raise EvaluationInputError(
            f"{path}:{lineno}: expected {n_fields} fields '{layout}', got {len(line.split())}: "
            f"{line.strip()!r}"
        )
    tokens = text.split()  # blank lines add no tokens
    if not tokens:
        raise EvaluationInputError(f"{path}: {what} has no trials")
    return [tokens[i::n_fields] for i in range(n_fields)]


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building many small acyclic containers (much faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _lines_of(path: str | os.PathLike, what: str, field: int, value: str, count: int = 1) -> list[int]:
    """1-based numbers of the first ``count`` lines whose ``field``-th field is ``value`` (for error messages)."""
    found = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), 1):
        parts = line.split()
        if len(parts) > field and parts[field] == value:
            found.append(lineno)
            if len(found) == count:
                break
    return found or [0]


def _check_keys(path, what: str, keys: Sequence[str], column: int, valid: tuple[str, ...]) -> None:
    unknown = set(keys) - set(valid)
    if unknown:
        bad = sorted(unknown)[0]
        raise EvaluationInputError(
            f"{path}:{_lines_of(path, what, column, bad)[0]}: key {bad!r} is not {'|'.join(valid)}"
        )


def _parse_scores(path, what: str, texts: Sequence[str], column: int) -> np.ndarray:
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        bad = next((t for t in texts if not _is_float(t)), None)
        if bad is None:  # numpy's parser refused a spelling Python accepts
            return _parse_scores(path, what, [repr(float(t)) for t in texts], column)
        raise EvaluationInputError(
            f"{path}:{_lines_of(path, what, column, bad)[0]}: score {bad!r} is not a number"
        ) from None
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        bad = texts[int(not_finite[0])]
        raise EvaluationInputError(
            f"{path}:{_lines_of(path, what, column, bad)[0]}: score {bad!r} is not finite"
        )
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def first_duplicate(items: Sequence[str]) -> tuple[int, int] | None:
    """Positions ``(first, repeat)`` of the first item that occurs twice, or None (a set settles the usual case)."""
    if len(set(items)) == len(items):
        return None
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item in seen:
            return seen[item], index
        seen[item] = index
    return None


# --------------------------------------------------------------------------------------------------
# CM score files
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CMScores:
    """The columns of a CM score file, in file order."""

    utt_ids: tuple[str, ...]
    systems: tuple[str, ...]
    keys: tuple[str, ...]
    scores: np.ndarray  # float64, finite

    def __len__(self) -> int:
        return len(self.utt_ids)

    @property
    def is_bonafide(self) -> np.ndarray:
        return np.fromiter(map("bonafide".__eq__, self.keys), dtype=bool, count=len(self.keys))

    def by_class(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bona fide scores, spoof scores)``."""
        is_bonafide = self.is_bonafide
        return self.scores[is_bonafide], self.scores[~is_bonafide]

    @classmethod
    def from_columns(
        cls,
        utt_ids: Iterable[str],
        systems: Iterable[str],
        keys: Iterable[str],
        scores,
        source: str = "scores",
    ) -> CMScores:
        """Build and validate a score set from parallel columns (``source`` names it in errors)."""
        utt_ids, systems, keys = tuple(map(str, utt_ids)), tuple(map(str, systems)), tuple(map(str, keys))
        try:
            values = np.asarray(scores, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise EvaluationInputError(f"{source}: scores are not numbers ({exc})") from None
        lengths = {len(utt_ids), len(systems), len(keys), values.size}
        if len(lengths) != 1:
            raise EvaluationInputError(
                f"{source}: columns differ in length (utt_ids {len(utt_ids)}, systems {len(systems)}, "
                f"keys {len(keys)}, scores {values.size})"
            )
        if not utt_ids:
            raise EvaluationInputError(f"{source}: no trials")
        bad_key = next((i for i, k in enumerate(keys) if k not in VALID_CM_KEYS), None)
        if bad_key is not None:
            raise EvaluationInputError(
                f"{source}: trial {bad_key + 1} ({utt_ids[bad_key]}): key {keys[bad_key]!r} "
                "is not bonafide|spoof"
            )
        not_finite = np.flatnonzero(~np.isfinite(values))
        if not_finite.size:
            i = int(not_finite[0])
            raise EvaluationInputError(
                f"{source}: {not_finite.size} non-finite score(s), first at trial {i + 1} ({utt_ids[i]}): "
                f"{values[i]}"
            )
        duplicate = first_duplicate(utt_ids)
        if duplicate is not None:
            first, repeat = duplicate
            raise DuplicateTrialId(
                f"{source}: trial {repeat + 1}: trial id {utt_ids[repeat]} appears more than once "
                f"(first as trial {first + 1})"
            )
        return cls(utt_ids, systems, keys, values)


def write_score_file(path: str | os.PathLike, trials: Sequence, scores) -> Path:
    """Write the score file of ``trials`` (objects with ``utt_id``, ``system`` and ``key`` attributes, e.g.
    :class:`antispoof.protocols.Trial` or :class:`ProtocolEntry`) and their ``scores`` (aligned array).

    One ``UTT_ID SYSTEM KEY SCORE`` line per trial, atomically (temp file in the same folder, then
    ``os.replace``). Scores are written with Python's shortest round-trip repr, so reading them back gives
    identical floats. Refuses non-finite scores, unknown keys, repeated ids, and ids or systems that are empty
    or contain whitespace.
    """
    path = Path(path)
    table = CMScores.from_columns(
        [t.utt_id for t in trials],
        [t.system for t in trials],
        [t.key for t in trials],
        scores,
        source=f"{path} (scores to write)",
    )
    for column, values in (("utt_id", table.utt_ids), ("system", table.systems)):
        bad = next((v for v in values if not v or len(v.split()) != 1 or v.split()[0] != v), None)
        if bad is not None:
            raise EvaluationInputError(f"{path}: {column} {bad!r} is empty or contains whitespace")
    text = "".join(
        f"{u} {s} {k} {v!r}\n"
        for u, s, k, v in zip(table.utt_ids, table.systems, table.keys, table.scores.tolist())
    )
    return write_text_atomically(path, text)


def read_score_file(path: str | os.PathLike) -> CMScores:
    """Read a ``UTT_ID SYSTEM KEY SCORE`` file; blank lines are ignored, anything malformed is refused.

    A trial id listed twice raises :class:`DuplicateTrialId` naming the file, the line of the repeat and the
    id; malformed lines raise :class:`EvaluationInputError`.
    """
    what = "score file"
    utt_ids, systems, keys, texts = _read_columns(path, what, "UTT_ID SYSTEM KEY SCORE")
    _check_keys(path, what, keys, 2, VALID_CM_KEYS)
    values = _parse_scores(path, what, texts, 3)
    duplicate = first_duplicate(utt_ids)
    if duplicate is not None:
        utt = utt_ids[duplicate[1]]
        first_line, repeat_line = _lines_of(path, what, 0, utt, count=2)
        raise DuplicateTrialId(
            f"{path}:{repeat_line}: trial id {utt} appears more than once (first on line {first_line})"
        )
    return CMScores(tuple(utt_ids), tuple(systems), tuple(keys), values)


def read_asv_scores(path: str | os.PathLike) -> ASVScores:
    """Read an organisers' ASV score file: ``SOURCE KEY SCORE`` lines with KEY target|nontarget|spoof.

    SOURCE (``bonafide`` or the attack id) is not used, as in the official code.
    """
    what = "ASV score file"
    _, keys, texts = _read_columns(path, what, "SOURCE KEY SCORE")
    _check_keys(path, what, keys, 1, VALID_ASV_KEYS)
    values = _parse_scores(path, what, texts, 2)
    key_array = np.asarray(keys)
    split = ASVScores(*(values[key_array == key] for key in VALID_ASV_KEYS))
    empty = [key for key, part in zip(VALID_ASV_KEYS, split) if part.size == 0]
    if empty:
        raise EvaluationInputError(f"{path}: ASV score file has no {'/'.join(empty)} trials")
    return split


# --------------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------------
def read_asvspoof_protocol(path: str | os.PathLike) -> list[ProtocolEntry]:
    """Parse an ASVspoof 2019 CM protocol (``SPEAKER UTT_ID - SYSTEM KEY`` lines).

    Returns :class:`ProtocolEntry` tuples ``(speaker, utt_id, system, key)`` in file order (``system`` is '-'
    for bona fide). Refuses lines without exactly 5 fields, keys other than bonafide|spoof, and duplicate
    utterance ids.
    """
    what = "protocol"
    speakers, utt_ids, _, systems, keys = _read_columns(path, what, "SPEAKER UTT_ID - SYSTEM KEY")
    _check_keys(path, what, keys, 4, VALID_CM_KEYS)
    duplicate = first_duplicate(utt_ids)
    if duplicate is not None:
        raise EvaluationInputError(f"{path}: utterance id {utt_ids[duplicate[1]]} appears more than once")
    with _gc_paused():
        return list(map(ProtocolEntry, speakers, utt_ids, systems, keys))


def first_items(items: Sequence[str], n: int = 3) -> str:
    """The first ``n`` items, comma-separated, with ``...`` when there are more (for one-line errors)."""
    shown = ", ".join(items[:n])
    return shown + (", ..." if len(items) > n else "")


def check_scores_against_protocol(
    scores: CMScores, trials: Sequence, score_path: str | os.PathLike = "scores"
) -> None:
    """Raise :class:`ScoreProtocolMismatch` unless ``scores`` holds each protocol trial exactly once.

    ``trials``: objects with ``utt_id``, ``system`` and ``key`` attributes (the :class:`ProtocolEntry` tuples
    of :func:`read_asvspoof_protocol`, or :class:`antispoof.protocols.Trial`). Missing, extra and duplicated
    ids and trials whose key or system differs are reported in one line (counts and first ids). Trial order is
    not checked: the metrics do not depend on it.
    """
    if not trials:
        raise ScoreProtocolMismatch(f"{score_path}: the protocol has no trials")
    utt_ids, systems, keys = [t.utt_id for t in trials], [t.system for t in trials], [t.key for t in trials]
    check_trials_match(scores, utt_ids, systems, keys, score_path, "protocol")


def check_trials_match(
    scores: CMScores,
    utt_ids: list[str],
    systems: list[str] | None,
    keys: list[str],
    score_path: str | os.PathLike,
    what: str,
) -> None:
    """Raise :class:`ScoreProtocolMismatch` unless ``scores`` lists each trial of ``what`` (the protocol, the
    metadata) exactly once with the same key (and system, unless ``systems`` is None)."""
    score_ids = set(scores.utt_ids)
    if (
        len(score_ids) == len(scores.utt_ids)
        and list(scores.utt_ids) == utt_ids
        and list(scores.keys) == keys
        and (systems is None or list(scores.systems) == systems)
    ):
        return  # the usual case, settled by C-level comparisons: same trials in protocol order
    problems = _trial_mismatches(scores, utt_ids, systems, keys, what)
    if problems:
        raise ScoreProtocolMismatch(
            f"{score_path}: scores do not match the {what} ({len(scores)} score lines, {len(utt_ids)} {what} "
            "trials): " + "; ".join(problems)
        )


def _trial_mismatches(scores: CMScores, utt_ids: list[str], systems, keys: list[str], what: str) -> list[str]:
    expected = dict(zip(utt_ids, zip(systems or [None] * len(utt_ids), keys)))
    seen: set[str] = set()
    duplicated, extra, key_differs, system_differs = [], [], [], []
    for utt, system, key in zip(scores.utt_ids, scores.systems, scores.keys):
        if utt in seen:
            duplicated.append(utt)
            continue
        seen.add(utt)
        if utt not in expected:
            extra.append(utt)
            continue
        want_system, want_key = expected[utt]
        if key != want_key:
            key_differs.append(f"{utt} ({key}, {what} {want_key})")
        elif want_system is not None and system != want_system:
            system_differs.append(f"{utt} ({system}, {what} {want_system})")
    missing = [utt for utt in expected if utt not in seen]
    problems = [
        f"{len(items)} trial(s) {label} (first: {first_items(items)})"
        for label, items in (
            ("missing from the scores", missing),
            (f"not in the {what}", extra),
            ("duplicated", duplicated),
            ("with a different key", key_differs),
            ("with a different system", system_differs),
        )
        if items
    ]
    if len(expected) != len(utt_ids):
        problems.append(f"the {what} itself lists {len(utt_ids) - len(expected)} id(s) twice")
    return problems
