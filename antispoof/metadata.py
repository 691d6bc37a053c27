"""Trial metadata: the speaker, key and attributes (emotion, TTS system, gender, ...) of each trial, column-wise.

This is what breakdowns group by. On disk it is a tab-separated file with a header naming at least ``utt_id``,
``key`` (bonafide|spoof) and ``speaker`` plus any attribute columns; the ``dses/dses_protocol.tsv`` a DSES
evaluation writes (``utt_id speaker emotion system key path``) is such a file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from antispoof.scorefiles import (
    VALID_CM_KEYS,
    CMScores,
    EvaluationInputError,
    check_trials_match,
    first_duplicate,
)

REQUIRED_COLUMNS = ("utt_id", "key", "speaker")
DSES_COLUMNS = ("utt_id", "speaker", "emotion", "system", "key")


@dataclass(frozen=True)
class TrialTable:
    """Trials as named columns of equal length (numpy string arrays); ``source`` names them in errors."""

    columns: Mapping[str, np.ndarray]
    source: str = "metadata"

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[str]], source: str = "metadata") -> TrialTable:
        """Validate columns: ``utt_id``, ``key`` and ``speaker`` present, equal lengths, keys bonafide|spoof,
        ids unique."""
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise EvaluationInputError(
                f"{source}: no column {', '.join(missing)} (has: {', '.join(columns) or 'none'})"
            )
        arrays = {name: np.asarray([str(v) for v in values], dtype=str) for name, values in columns.items()}
        lengths = {name: array.size for name, array in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise EvaluationInputError(f"{source}: columns differ in length ({lengths})")
        if not arrays["utt_id"].size:
            raise EvaluationInputError(f"{source}: no trials")
        bad = np.flatnonzero(~np.isin(arrays["key"], VALID_CM_KEYS))
        if bad.size:
            i = int(bad[0])
            raise EvaluationInputError(
                f"{source}: trial {i + 1} ({arrays['utt_id'][i]}): key {arrays['key'][i]!r} is not bonafide|spoof"
            )
        duplicate = first_duplicate(arrays["utt_id"].tolist())
        if duplicate is not None:
            raise EvaluationInputError(
                f"{source}: trial {duplicate[1] + 1}: utt_id {arrays['utt_id'][duplicate[1]]} appears more "
                f"than once (first as trial {duplicate[0] + 1})"
            )
        return cls(arrays, source)

    @classmethod
    def from_trials(cls, trials: Sequence, names: Sequence[str] = DSES_COLUMNS, source: str = "trials"):
        """The ``names`` attributes of each trial object (e.g. :class:`antispoof.protocols.Trial`) as columns."""
        return cls.from_columns({name: [getattr(t, name) for t in trials] for name in names}, source)

    def __len__(self) -> int:
        return int(self.columns["utt_id"].size)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise EvaluationInputError(
                f"{self.source}: no column {name!r} (columns: {', '.join(self.columns)})"
            )
        return self.columns[name]

    @property
    def is_bonafide(self) -> np.ndarray:
        return self.columns["key"] == "bonafide"

    def scores_of(self, cm: CMScores, score_path: str | os.PathLike = "scores") -> np.ndarray:
        """The scores of a score file aligned with this table's rows.

        The score file must list each trial exactly once with the same key (and the same system, when the
        table has a ``system`` column); otherwise :class:`ScoreProtocolMismatch` says what differs.
        """
        utt_ids = self.columns["utt_id"].tolist()
        systems = self.columns["system"].tolist() if "system" in self.columns else None
        check_trials_match(cm, utt_ids, systems, self.columns["key"].tolist(), score_path, "metadata")
        if list(cm.utt_ids) == utt_ids:
            return cm.scores
        position = dict(zip(cm.utt_ids, range(len(cm))))
        return cm.scores[[position[u] for u in utt_ids]]


def read_metadata(path: str | os.PathLike) -> TrialTable:
    """Read a tab-separated metadata file with a header (``utt_id``, ``key``, ``speaker`` + attributes).

    Errors name the file and line: a missing required column, a row with another number of fields, an unknown
    key, an empty value or a repeated ``utt_id``.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read metadata: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EvaluationInputError(f"{path}: metadata is not UTF-8 tab-separated text ({exc})") from None
    if not rows:
        raise EvaluationInputError(f"{path}: metadata is empty (expected a header with utt_id, key, speaker)")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise EvaluationInputError(
            f"{path}:1: header lacks column(s) {', '.join(missing)} (tab-separated; has: {', '.join(header)})"
        )
    body = [(lineno, row) for lineno, row in enumerate(rows[1:], 2) if any(cell.strip() for cell in row)]
    for lineno, row in body:
        if len(row) != len(header):
            raise EvaluationInputError(
                f"{path}:{lineno}: expected {len(header)} tab-separated fields, got {len(row)}"
            )
    lines = [lineno for lineno, _ in body]
    columns = {name: [row[i].strip() for _, row in body] for i, name in enumerate(header)}
    _check_metadata_values(path, columns, lines)
    return TrialTable.from_columns(columns, source=str(path))


def _check_metadata_values(path, columns: Mapping[str, list[str]], lines: list[int]) -> None:
    """File-and-line errors for the problems :meth:`TrialTable.from_columns` would report by trial number."""
    if not lines:
        raise EvaluationInputError(f"{path}: metadata has no trials")
    for name in REQUIRED_COLUMNS:
        empty = next((i for i, value in enumerate(columns[name]) if not value), None)
        if empty is not None:
            raise EvaluationInputError(f"{path}:{lines[empty]}: empty {name}")
    bad = next((i for i, key in enumerate(columns["key"]) if key not in VALID_CM_KEYS), None)
    if bad is not None:
        raise EvaluationInputError(f"{path}:{lines[bad]}: key {columns['key'][bad]!r} is not bonafide|spoof")
    duplicate = first_duplicate(columns["utt_id"])
    if duplicate is not None:
        first, repeat = duplicate
        raise EvaluationInputError(
            f"{path}:{lines[repeat]}: utt_id {columns['utt_id'][repeat]} appears more than once "
            f"(first on line {lines[first]})"
        )
