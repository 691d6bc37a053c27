"""Countermeasure evaluation: score files, EER, DET, ASVspoof 2019 min t-DCF, DSES breakdowns, and a CLI.

Scores follow the convention of the whole project: higher = more bona fide.

* Score files use the official format, one trial per line in protocol order: ``UTT_ID SYSTEM KEY SCORE``
  (SYSTEM ``-`` for bona fide or the attack / TTS system; KEY ``bonafide`` or ``spoof``).
* EER, the DET curve and the min t-DCF re-implement the official ASVspoof 2019 evaluation code (as shipped in
  clovaai/aasist ``evaluation.py``) with the same operating points and tie handling, so results agree with
  it to floating-point precision; file reading and ASV error rates are vectorised.
* CM-only metrics for DSES (no ASV scores) follow the ASVspoof 5 evaluation package: minDCF, actDCF, Cllr.

CLI::

    python evaluation.py --cm_scores scores.txt --asv_scores ASVspoof2019.LA.asv.eval.gi.trl.scores.txt \
        [--protocol ASVspoof2019.LA.cm.eval.trl.txt] [--json]

Only numpy is imported at module level; matplotlib and scipy are imported where a plot is drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import operator
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from antispoof.fileio import write_text_atomically

VALID_CM_KEYS = ("bonafide", "spoof")
VALID_ASV_KEYS = ("target", "nontarget", "spoof")

# ASVspoof 2019 t-DCF cost model (evaluation plan; identical to the official evaluation code).
ASVSPOOF2019_TDCF_COST_MODEL = MappingProxyType(
    {
        "Pspoof": 0.05,  # prior of a spoofing attack
        "Ptar": (1 - 0.05) * 0.99,  # prior of a target speaker
        "Pnon": (1 - 0.05) * 0.01,  # prior of a zero-effort impostor
        "Cmiss_asv": 1.0,  # ASV falsely rejects a target
        "Cfa_asv": 10.0,  # ASV falsely accepts a nontarget
        "Cmiss_cm": 1.0,  # CM falsely rejects a bona fide trial
        "Cfa_cm": 10.0,  # CM falsely accepts a spoof
    }
)

# ASVspoof 5 (track 1) CM-only DCF parameters.
DCF_P_SPOOF = 0.05
DCF_C_MISS = 1.0
DCF_C_FA = 10.0

DEFAULT_BOOTSTRAP_RESAMPLES = 1000
DEFAULT_BOOTSTRAP_SEED = 0


class EvaluationInputError(ValueError):
    """A score or protocol file (or array) cannot be used; the message names the file and line."""


class ScoreProtocolMismatch(ValueError):
    """A score file does not cover exactly the trials of its protocol."""


# --------------------------------------------------------------------------------------------------
# score files
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
        return cls(utt_ids, systems, keys, values)


def _read_text(path: str | os.PathLike, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise EvaluationInputError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(f"{path}: {what} is not UTF-8 text ({exc.reason})") from None


def _read_lines(path: str | os.PathLike, what: str) -> list[str]:
    return _read_text(path, what).splitlines()


def _read_columns(path: str | os.PathLike, what: str, layout: str) -> list[list[str]]:
    """Columns of a whitespace-separated table with exactly ``len(layout.split())`` fields per non-blank line.

    Fast on the 71k-line ASVspoof files: the whole text is split once and columns are strided slices of the
    tokens, so no per-row lists or tuples are built (they would also wake the cyclic garbage collector over
    and over); lines are split only to check their field counts, and a bad line is located only if there
    is one.
    """
    text = _read_text(path, what)
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


def _line_of(path: str | os.PathLike, what: str, field: int, value: str) -> int:
    """1-based number of the first line whose ``field``-th field is ``value`` (error messages only)."""
    for lineno, line in enumerate(_read_lines(path, what), 1):
        parts = line.split()
        if len(parts) > field and parts[field] == value:
            return lineno
    return 0


def _check_keys(path, what: str, keys: Sequence[str], column: int, valid: tuple[str, ...]) -> None:
    unknown = set(keys) - set(valid)
    if unknown:
        bad = sorted(unknown)[0]
        raise EvaluationInputError(
            f"{path}:{_line_of(path, what, column, bad)}: key {bad!r} is not {'|'.join(valid)}"
        )


def _parse_scores(path, what: str, texts: Sequence[str], column: int) -> np.ndarray:
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        bad = next((t for t in texts if not _is_float(t)), None)
        if bad is None:  # numpy's parser refused a spelling Python accepts
            return _parse_scores(path, what, [repr(float(t)) for t in texts], column)
        raise EvaluationInputError(
            f"{path}:{_line_of(path, what, column, bad)}: score {bad!r} is not a number"
        ) from None
    not_finite = np.flatnonzero(~np.isfinite(values))
    if not_finite.size:
        bad = texts[int(not_finite[0])]
        raise EvaluationInputError(f"{path}:{_line_of(path, what, column, bad)}: score {bad!r} is not finite")
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_score_file(
    path: str | os.PathLike,
    utt_ids: Iterable,
    systems: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
    scores=None,
) -> Path:
    """Write ``UTT_ID SYSTEM KEY SCORE`` lines atomically (temp file in the same folder, then ``os.replace``).

    Give four parallel columns, ``write_score_file(path, utt_ids, systems, keys, scores)``, or one iterable of
    ``(utt_id, system, key, score)`` rows, ``write_score_file(path, rows)``. Scores are written with Python's
    shortest round-trip repr, so reading them back gives identical floats. Refuses non-finite scores, unknown
    keys, and ids or systems that are empty or contain whitespace.
    """
    path = Path(path)
    source = f"{path} (scores to write)"
    if systems is None and keys is None and scores is None:
        rows = [tuple(row) for row in utt_ids]
        bad_row = next((i for i, row in enumerate(rows) if len(row) != 4), None)
        if bad_row is not None:
            raise EvaluationInputError(
                f"{source}: row {bad_row + 1} is not (utt_id, system, key, score): {rows[bad_row]!r}"
            )
        utt_ids, systems, keys, scores = zip(*rows) if rows else ((), (), (), ())
    elif systems is None or keys is None or scores is None:
        raise TypeError("write_score_file takes (path, rows) or (path, utt_ids, systems, keys, scores)")
    table = CMScores.from_columns(utt_ids, systems, keys, scores, source=source)
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
    """Read a ``UTT_ID SYSTEM KEY SCORE`` file; blank lines are ignored, anything malformed is refused."""
    what = "score file"
    utt_ids, systems, keys, texts = _read_columns(path, what, "UTT_ID SYSTEM KEY SCORE")
    _check_keys(path, what, keys, 2, VALID_CM_KEYS)
    return CMScores(tuple(utt_ids), tuple(systems), tuple(keys), _parse_scores(path, what, texts, 3))


# --------------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------------
def read_asvspoof_protocol(path: str | os.PathLike) -> list[tuple[str, str, str, str]]:
    """Parse an ASVspoof 2019 CM protocol (``SPEAKER UTT_ID - SYSTEM KEY`` lines).

    Returns ``(speaker, utt_id, system, key)`` plain tuples in file order (``system`` is '-' for bona fide).
    Refuses lines without exactly 5 fields, keys other than bonafide|spoof, and duplicate utterance ids.
    """
    what = "protocol"
    speakers, utt_ids, _, systems, keys = _read_columns(path, what, "SPEAKER UTT_ID - SYSTEM KEY")
    _check_keys(path, what, keys, 4, VALID_CM_KEYS)
    if len(set(utt_ids)) != len(utt_ids):
        seen: set[str] = set()
        duplicate = next(u for u in utt_ids if u in seen or seen.add(u))
        raise EvaluationInputError(f"{path}: utterance id {duplicate} appears more than once")
    with _gc_paused():
        return list(zip(speakers, utt_ids, systems, keys))


def _field(entry, name: str):
    """Read a field of a protocol entry given as an object with attributes or a mapping."""
    if isinstance(entry, Mapping):
        return entry[name]
    return getattr(entry, name)


_ASVSPOOF_TUPLE_FIELDS = ("speaker", "utt_id", "system", "key")


def _entry_column(entries: Sequence, name: str) -> list[str]:
    """One field of each entry: objects or mappings by name; plain 4-tuples as ASVspoof protocol tuples."""
    first = entries[0]
    if isinstance(first, tuple) and not hasattr(first, name):
        if name not in _ASVSPOOF_TUPLE_FIELDS:
            raise ValueError(
                f"protocol entries are plain (speaker, utt_id, system, key) tuples without {name!r}: pass "
                "objects or mappings with utt_id, speaker, emotion, system and key"
            )
        return list(map(operator.itemgetter(_ASVSPOOF_TUPLE_FIELDS.index(name)), entries))
    return [str(_field(e, name)) for e in entries]


def _first(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (", ..." if len(items) > n else "")


def check_scores_against_protocol(
    scores: CMScores, protocol_entries: Sequence, score_path: str | os.PathLike = "scores"
) -> None:
    """Raise :class:`ScoreProtocolMismatch` unless ``scores`` holds each protocol trial exactly once.

    ``protocol_entries``: the ``(speaker, utt_id, system, key)`` tuples of :func:`read_asvspoof_protocol`, or
    objects / mappings with ``utt_id``, ``system`` and ``key`` (data_utils' trials). Missing, extra and
    duplicated ids and trials whose key or system differs are reported in one line (counts and first ids).
    Trial order is not checked: the metrics do not depend on it.
    """
    if not protocol_entries:
        raise ScoreProtocolMismatch(f"{score_path}: the protocol has no trials")
    utt_ids = _entry_column(protocol_entries, "utt_id")
    systems = _entry_column(protocol_entries, "system")
    keys = _entry_column(protocol_entries, "key")
    score_ids = set(scores.utt_ids)
    if (
        len(score_ids) == len(scores.utt_ids)
        and list(scores.utt_ids) == utt_ids
        and list(scores.keys) == keys
        and list(scores.systems) == systems
    ):
        return  # the usual case, settled by C-level comparisons: same trials in protocol order
    expected = dict(zip(utt_ids, zip(systems, keys)))
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
            key_differs.append(f"{utt} ({key}, protocol {want_key})")
        elif system != want_system:
            system_differs.append(f"{utt} ({system}, protocol {want_system})")
    missing = [utt for utt in expected if utt not in seen]
    problems = []
    for label, items in (
        ("missing from the scores", missing),
        ("not in the protocol", extra),
        ("duplicated", duplicated),
        ("with a different key", key_differs),
        ("with a different system", system_differs),
    ):
        if items:
            problems.append(f"{len(items)} trial(s) {label} (first: {_first(items)})")
    if len(expected) != len(utt_ids):
        problems.append(f"the protocol itself lists {len(utt_ids) - len(expected)} id(s) twice")
    if problems:
        raise ScoreProtocolMismatch(
            f"{score_path}: scores do not match the protocol ({len(scores)} score lines, {len(utt_ids)} "
            f"protocol trials): " + "; ".join(problems)
        )


# --------------------------------------------------------------------------------------------------
# EER and DET (official ASVspoof 2019 operating points)
# --------------------------------------------------------------------------------------------------
def _as_scores(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{what}: need at least one score")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: scores contain NaN or inf")
    return array


def _det_from_sorted_labels(sorted_is_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every step through trials sorted by ascending score.

    Point k (k = 0..n) accepts all trials after the first k: its miss rate counts targets among those k, its
    false-alarm rate nontargets among the rest. This is the operating-point grid of the official code.
    """
    n = sorted_is_target.size
    targets_below = np.cumsum(sorted_is_target, dtype=np.int64)
    n_target = int(targets_below[-1])
    n_nontarget = n - n_target
    nontargets_above = n_nontarget - (np.arange(1, n + 1) - targets_below)
    frr = np.concatenate(([0.0], targets_below / n_target))
    far = np.concatenate(([1.0], nontargets_above / n_nontarget))
    return frr, far


def _official_order(target_scores: np.ndarray, nontarget_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores sorted ascending, ties broken as the official code does (targets first, then input order)."""
    all_scores = np.concatenate((target_scores, nontarget_scores))
    order = np.argsort(all_scores, kind="stable")
    return all_scores[order], order < target_scores.size


def compute_det_curve(target_scores, nontarget_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frr, far, thresholds)`` over all operating points, as the official ``compute_det_curve``.

    ``target_scores`` are the positive class (bona fide), ``nontarget_scores`` the negative class (spoof).
    Threshold k is the k-th sorted score (the first is the lowest score minus 0.001).
    """
    target = _as_scores(target_scores, "target (bona fide) scores")
    nontarget = _as_scores(nontarget_scores, "nontarget (spoof) scores")
    sorted_scores, sorted_is_target = _official_order(target, nontarget)
    frr, far = _det_from_sorted_labels(sorted_is_target)
    thresholds = np.concatenate(([sorted_scores[0] - 0.001], sorted_scores))
    return frr, far, thresholds


def _eer_from_det(frr: np.ndarray, far: np.ndarray) -> tuple[float, int]:
    index = int(np.argmin(np.abs(frr - far)))
    return float((frr[index] + far[index]) / 2), index


def compute_eer(target_scores, nontarget_scores) -> tuple[float, float]:
    """Equal error rate (a fraction, not %) and its threshold, exactly as the official ``compute_eer``."""
    frr, far, thresholds = compute_det_curve(target_scores, nontarget_scores)
    eer, index = _eer_from_det(frr, far)
    return eer, float(thresholds[index])


# --------------------------------------------------------------------------------------------------
# ASVspoof 2019 min t-DCF
# --------------------------------------------------------------------------------------------------
class ASVScores(NamedTuple):
    """The organisers' ASV scores split by key."""

    target: np.ndarray
    nontarget: np.ndarray
    spoof: np.ndarray


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


def asv_error_rates(asv: ASVScores) -> dict:
    """ASV operating point of the t-DCF: the ASV EER threshold, and the error rates there.

    ``pfa``: nontargets accepted (score >= threshold); ``pmiss``: targets rejected; ``pmiss_spoof``: spoofs
    rejected.
    """
    eer, threshold = compute_eer(asv.target, asv.nontarget)
    return {
        "eer": eer,
        "threshold": threshold,
        "pfa": np.count_nonzero(asv.nontarget >= threshold) / asv.nontarget.size,
        "pmiss": np.count_nonzero(asv.target < threshold) / asv.target.size,
        "pmiss_spoof": np.count_nonzero(asv.spoof < threshold) / asv.spoof.size,
    }


def compute_tdcf_curve(
    bonafide_cm,
    spoof_cm,
    pfa_asv: float,
    pmiss_asv: float,
    pmiss_spoof_asv: float,
    cost_model: Mapping[str, float] = ASVSPOOF2019_TDCF_COST_MODEL,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised t-DCF at every CM threshold (the ASVspoof 2019 formulation), with the thresholds.

    t-DCF(s) = C1 Pmiss_cm(s) + C2 Pfa_cm(s), normalised by min(C1, C2), where
    C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv and
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv).
    """
    priors = (cost_model["Ptar"], cost_model["Pnon"], cost_model["Pspoof"])
    if min(priors) < 0 or abs(sum(priors) - 1) > 1e-10:
        raise ValueError(f"t-DCF priors must be non-negative and sum to 1, got Ptar, Pnon, Pspoof = {priors}")
    bonafide = _as_scores(bonafide_cm, "bona fide CM scores")
    spoof = _as_scores(spoof_cm, "spoof CM scores")
    if np.unique(np.concatenate((bonafide, spoof))).size < 3:
        raise ValueError("t-DCF needs soft CM scores, not binary decisions (fewer than 3 distinct values)")
    pmiss_cm, pfa_cm, thresholds = compute_det_curve(bonafide, spoof)
    c1 = (
        cost_model["Ptar"] * (cost_model["Cmiss_cm"] - cost_model["Cmiss_asv"] * pmiss_asv)
        - cost_model["Pnon"] * cost_model["Cfa_asv"] * pfa_asv
    )
    c2 = cost_model["Cfa_cm"] * cost_model["Pspoof"] * (1 - pmiss_spoof_asv)
    if c1 < 0 or c2 < 0:
        raise ValueError(f"t-DCF weights are negative (C1={c1}, C2={c2}): check the ASV error rates")
    return (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2), thresholds


def compute_min_tdcf(
    bonafide_cm, spoof_cm, asv: ASVScores, cost_model: Mapping[str, float] = ASVSPOOF2019_TDCF_COST_MODEL
) -> dict:
    """Minimum normalised t-DCF of a CM in tandem with an ASV system fixed at its EER threshold."""
    rates = asv_error_rates(asv)
    curve, thresholds = compute_tdcf_curve(
        bonafide_cm, spoof_cm, rates["pfa"], rates["pmiss"], rates["pmiss_spoof"], cost_model
    )
    index = int(np.argmin(curve))
    return {"min_tdcf": float(curve[index]), "cm_threshold": float(thresholds[index]), "asv": rates}


# --------------------------------------------------------------------------------------------------
# ASVspoof 2019 LA report
# --------------------------------------------------------------------------------------------------
def _as_cm_scores(cm_scores: CMScores | str | os.PathLike) -> CMScores:
    return cm_scores if isinstance(cm_scores, CMScores) else read_score_file(cm_scores)


def evaluate_asvspoof2019(
    cm_scores: CMScores | str | os.PathLike, asv_score_path: str | os.PathLike | None = None
) -> dict:
    """Pooled EER, min t-DCF and per-attack EERs of a CM score set or file, as the official code reports.

    Each attack's EER compares its spoofs with all bona fide trials; attacks are the spoof systems present
    (A07..A19 on eval, A01..A06 on dev). Without ``asv_score_path`` the t-DCF is skipped (``min_tdcf`` None).
    The result holds only JSON-serialisable values; EERs are in percent.
    """
    cm = _as_cm_scores(cm_scores)
    is_bonafide = cm.is_bonafide
    system_names = sorted(set(cm.systems))
    code_of = {name: code for code, name in enumerate(system_names)}
    system_codes = np.fromiter(map(code_of.__getitem__, cm.systems), dtype=np.int64, count=len(cm))
    bonafide, spoof = cm.scores[is_bonafide], cm.scores[~is_bonafide]
    if bonafide.size == 0 or spoof.size == 0:
        raise EvaluationInputError(
            f"scores need both bona fide and spoof trials (got {bonafide.size} bona fide, {spoof.size} spoof)"
        )
    eer, eer_threshold = compute_eer(bonafide, spoof)
    attack_codes = np.unique(system_codes[~is_bonafide])
    per_attack, per_attack_counts = {}, {}
    for code in attack_codes:
        attack = system_names[code]
        attack_scores = cm.scores[(system_codes == code) & ~is_bonafide]
        per_attack[attack] = 100 * compute_eer(bonafide, attack_scores)[0]
        per_attack_counts[attack] = int(attack_scores.size)
    result = {
        "n_trials": len(cm),
        "n_bonafide": int(bonafide.size),
        "n_spoof": int(spoof.size),
        "eer_percent": 100 * eer,
        "eer_threshold": eer_threshold,
        "min_tdcf": None,
        "min_tdcf_threshold": None,
        "asv": None,
        "cost_model": dict(ASVSPOOF2019_TDCF_COST_MODEL),
        "per_attack_eer_percent": per_attack,
        "per_attack_n_spoof": per_attack_counts,
    }
    if asv_score_path is not None:
        tdcf = compute_min_tdcf(bonafide, spoof, read_asv_scores(asv_score_path))
        result["min_tdcf"] = tdcf["min_tdcf"]
        result["min_tdcf_threshold"] = tdcf["cm_threshold"]
        asv = tdcf["asv"]
        result["asv"] = {
            "score_file": str(asv_score_path),
            "eer_percent": 100 * asv["eer"],
            "threshold": asv["threshold"],
            "pfa": float(asv["pfa"]),
            "pmiss": float(asv["pmiss"]),
            "pmiss_spoof": float(asv["pmiss_spoof"]),
        }
    return result


def format_asvspoof2019_report(result: Mapping) -> str:
    """The text report of :func:`evaluate_asvspoof2019` (numbers at the official code's 9 decimals)."""
    lines = [
        f"ASVspoof 2019 LA: {result['n_trials']} trials ({result['n_bonafide']} bona fide, "
        f"{result['n_spoof']} spoof)",
        "",
        "CM SYSTEM",
        f"  EER        = {result['eer_percent']:.9f} %  (pooled equal error rate; threshold "
        f"{result['eer_threshold']:.6g})",
    ]
    if result.get("min_tdcf") is None:
        lines += ["", "TANDEM", "  min t-DCF  = not computed (no ASV scores given)"]
    else:
        asv = result["asv"]
        lines += [
            "",
            "TANDEM",
            f"  min t-DCF  = {result['min_tdcf']:.9f}  (normalised, ASVspoof 2019 cost model)",
            f"  ASV        : EER {asv['eer_percent']:.6f} % at threshold {asv['threshold']:.6g}; Pfa "
            f"{asv['pfa']:.6f}, Pmiss {asv['pmiss']:.6f}, Pmiss(spoof) {asv['pmiss_spoof']:.6f}",
        ]
    lines += [
        "",
        "BREAKDOWN CM SYSTEM (each attack's spoofs vs all bona fide trials)",
        "  attack   n_spoof   EER (%)",
    ]
    for attack, value in result["per_attack_eer_percent"].items():
        lines.append(f"  {attack:<8} {result['per_attack_n_spoof'][attack]:>7}   {value:12.9f}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# CM-only metrics (ASVspoof 5): minDCF, actDCF, Cllr
# --------------------------------------------------------------------------------------------------
def _dcf_normaliser(p_spoof: float, c_miss: float, c_fa: float) -> float:
    return min(c_miss * (1 - p_spoof), c_fa * p_spoof)


def _dcf_curve(frr, far, p_spoof: float, c_miss: float, c_fa: float) -> np.ndarray:
    return (c_miss * (1 - p_spoof) * frr + c_fa * p_spoof * far) / _dcf_normaliser(p_spoof, c_miss, c_fa)


def compute_min_dcf(
    bonafide_scores,
    spoof_scores,
    p_spoof: float = DCF_P_SPOOF,
    c_miss: float = DCF_C_MISS,
    c_fa: float = DCF_C_FA,
) -> tuple[float, float]:
    """Normalised minimum DCF over the DET operating points and its threshold (ASVspoof 5 ``compute_mindcf``).

    DCF = Cmiss (1 - Pspoof) Pmiss + Cfa Pspoof Pfa, normalised by min(Cmiss (1 - Pspoof), Cfa Pspoof); a
    bona fide trial is a miss when rejected, a spoof a false alarm when accepted.
    """
    frr, far, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    curve = _dcf_curve(frr, far, p_spoof, c_miss, c_fa)
    index = int(np.argmin(curve))
    return float(curve[index]), float(thresholds[index])


def compute_act_dcf(
    bonafide_scores,
    spoof_scores,
    p_spoof: float = DCF_P_SPOOF,
    c_miss: float = DCF_C_MISS,
    c_fa: float = DCF_C_FA,
) -> tuple[float, float]:
    """Normalised actual DCF and its threshold (ASVspoof 5 ``compute_actDCF``).

    Scores are taken as bona-fide-vs-spoof log-likelihood ratios and thresholded at the Bayes decision point
    -log(beta), beta = Cmiss (1 - Pspoof) / (Cfa Pspoof) (beta = 1.9, threshold -0.642 with the defaults):
    miss = bona fide score < threshold, false alarm = spoof score >= threshold. Uncalibrated scores are
    penalised here, which is the point of the metric.
    """
    bonafide = _as_scores(bonafide_scores, "bona fide scores")
    spoof = _as_scores(spoof_scores, "spoof scores")
    threshold = -math.log(c_miss * (1 - p_spoof) / (c_fa * p_spoof))
    rate_miss = np.count_nonzero(bonafide < threshold) / bonafide.size
    rate_fa = np.count_nonzero(spoof >= threshold) / spoof.size
    act = (c_miss * (1 - p_spoof) * rate_miss + c_fa * p_spoof * rate_fa) / _dcf_normaliser(
        p_spoof, c_miss, c_fa
    )
    return float(act), threshold


def compute_cllr(bonafide_llrs, spoof_llrs) -> float:
    """Log-likelihood-ratio cost in bits (ASVspoof 5 ``calculate_CLLR``); scores are natural-log LLRs.

    Cllr = (mean log2(1 + e^-s) over bona fide + mean log2(1 + e^s) over spoof) / 2: 1 bit for an
    uninformative all-zero system, near 0 for well-separated calibrated LLRs. ``logaddexp`` keeps large scores
    from overflowing.
    """
    bonafide = _as_scores(bonafide_llrs, "bona fide scores")
    spoof = _as_scores(spoof_llrs, "spoof scores")
    bits = (np.mean(np.logaddexp(0.0, -bonafide)) + np.mean(np.logaddexp(0.0, spoof))) / (2 * math.log(2))
    return float(bits)


# --------------------------------------------------------------------------------------------------
# bootstrap confidence intervals
# --------------------------------------------------------------------------------------------------
# resamples x trials per vectorised block: 512 KiB int64 arrays stay in cache (2-3x faster than large blocks)
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 16


def _bootstrap_replicates(
    sorted_is_bonafide: np.ndarray,
    sorted_clusters: np.ndarray,
    draw_counts: np.ndarray,
    p_spoof: float,
    c_miss: float,
    c_fa: float,
) -> tuple[np.ndarray, np.ndarray]:
    """EER (fraction) and normalised minDCF of each resample; resamples lacking a class are dropped.

    ``sorted_*`` describe the trials in official sort order; ``draw_counts[b, c]`` is how often resample b
    drew cluster c, so trial i appears ``w = draw_counts[b, cluster_i]`` times. Materialising a resample
    would put the w copies of a trial next to each other, and along the official grid d = Pmiss - Pfa only
    grows, by a fixed step per copy (1/n_bonafide for a bona fide copy, 1/n_spoof for a spoof copy). So the
    EER point, the last point with d < 0 or the first with d >= 0, is found exactly from cumulative weighted
    counts: locate the block where d changes sign, then the copy inside it (integer arithmetic on
    d * n_bonafide * n_spoof). The DCF is linear along a block, so its minimum lies on block boundaries (or at
    the accept-all start).
    """
    is_bonafide = sorted_is_bonafide.astype(np.int64)
    miss_weight, fa_weight = c_miss * (1 - p_spoof), c_fa * p_spoof
    normaliser = _dcf_normaliser(p_spoof, c_miss, c_fa)
    eers, min_dcfs = [], []
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // is_bonafide.size)
    for start in range(0, draw_counts.shape[0], rows_per_chunk):
        weights = draw_counts[start : start + rows_per_chunk, sorted_clusters].astype(
            np.int64
        )  # (resamples, trials)
        bonafide_weights = weights * is_bonafide
        bonafide_below = np.cumsum(bonafide_weights, axis=1)  # bona fide copies up to each block end
        spoof_below = np.cumsum(weights - bonafide_weights, axis=1)
        n_bonafide, n_spoof = bonafide_below[:, -1], spoof_below[:, -1]
        valid = (n_bonafide > 0) & (n_spoof > 0)
        if not valid.any():
            continue
        bonafide_below, spoof_below = bonafide_below[valid], spoof_below[valid]
        n_bonafide, n_spoof = n_bonafide[valid], n_spoof[valid]
        nb, ns = n_bonafide[:, None], n_spoof[:, None]

        # DCF = miss_weight B / nb + fa_weight (ns - S) / ns at every block end (B, S: copies up to there)
        cost = bonafide_below * (miss_weight / nb) - spoof_below * (fa_weight / ns)
        block_min = cost.min(axis=1) + fa_weight
        min_dcfs.append(np.minimum(block_min, fa_weight) / normaliser)  # fa_weight: the accept-all point

        # (Pmiss - Pfa) nb ns = B ns + S nb - nb ns grows along the grid and is negative before the EER
        crossing = np.count_nonzero(bonafide_below * ns + spoof_below * nb < nb * ns, axis=1)
        rows = np.arange(crossing.size)
        before = np.maximum(crossing - 1, 0)
        has_before = crossing > 0
        bonafide_start = np.where(has_before, bonafide_below[rows, before], 0)
        spoof_start = np.where(has_before, spoof_below[rows, before], 0)
        d_start = bonafide_start * n_spoof - (n_spoof - spoof_start) * n_bonafide
        block_is_bonafide = is_bonafide[crossing]
        step = np.where(block_is_bonafide == 1, n_spoof, n_bonafide)
        copies_to_cross = (-d_start + step - 1) // step  # first copy with d >= 0
        # the two points around the sign change: take the smaller |Pmiss - Pfa| computed in floats as the
        # official code does (so an exact tie is settled by the same rounding), the earlier one on equality
        rates = []
        for copies in (copies_to_cross - 1, copies_to_cross):
            frr_at = (bonafide_start + copies * block_is_bonafide) / n_bonafide
            far_at = (n_spoof - spoof_start - copies * (1 - block_is_bonafide)) / n_spoof
            rates.append((frr_at, far_at))
        (frr_low, far_low), (frr_high, far_high) = rates
        take_low = np.abs(frr_low - far_low) <= np.abs(frr_high - far_high)
        eers.append(np.where(take_low, (frr_low + far_low) / 2, (frr_high + far_high) / 2))
    if not eers:
        return np.empty(0), np.empty(0)
    return np.concatenate(eers), np.concatenate(min_dcfs)


def bootstrap_ci(
    scores,
    is_bonafide,
    speakers: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    p_spoof: float = DCF_P_SPOOF,
    c_miss: float = DCF_C_MISS,
    c_fa: float = DCF_C_FA,
) -> dict:
    """Percentile bootstrap confidence intervals of the EER (%) and the minDCF.

    Speakers are resampled (cluster bootstrap): draw as many speakers as there are, with replacement, and take
    all trials of each drawn speaker (bona fide and spoof alike), so within-speaker correlation widens the
    interval as it should. With fewer than 2 speakers (or ``speakers=None``) single trials are resampled
    instead, and the result says so. Resamples lacking either class are dropped and counted.

    Each resample's EER and minDCF equal those of the official operating-point grid on the materialised
    resample (see :func:`_bootstrap_replicates`), computed for many resamples at once without re-sorting.
    """
    values = _as_scores(scores, "scores")
    labels = np.asarray(is_bonafide, dtype=bool).reshape(-1)
    if labels.size != values.size:
        raise ValueError(f"scores ({values.size}) and is_bonafide ({labels.size}) differ in length")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    n_speakers = 0
    if speakers is not None:
        if len(speakers) != values.size:
            raise ValueError(f"scores ({values.size}) and speakers ({len(speakers)}) differ in length")
        _, clusters = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
        n_speakers = int(clusters.max()) + 1
    if n_speakers >= 2:
        resampling, note = "speakers", None
    else:
        clusters = np.arange(values.size)
        resampling = "trials"
        note = (
            "no speaker labels: trials resampled"
            if speakers is None
            else f"only {n_speakers} speaker: trials resampled instead of speakers"
        )
    n_clusters = int(clusters.max()) + 1

    # one sort with the official tie order (bona fide first among equal scores), shared by every resample
    order = np.lexsort((~labels, values))
    rng = np.random.default_rng(seed)
    draw_counts = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_resamples)
    eers, min_dcfs = _bootstrap_replicates(labels[order], clusters[order], draw_counts, p_spoof, c_miss, c_fa)
    if eers.size == 0:
        raise ValueError("bootstrap: every resample lacked bona fide or spoof trials")
    tail = 100 * (1 - confidence) / 2
    eer_low, eer_high = np.percentile(100 * eers, [tail, 100 - tail])
    dcf_low, dcf_high = np.percentile(min_dcfs, [tail, 100 - tail])
    return {
        "confidence": confidence,
        "eer_percent": [float(eer_low), float(eer_high)],
        "min_dcf": [float(dcf_low), float(dcf_high)],
        "resampling": resampling,
        "n_clusters": n_clusters,
        "n_resamples": int(eers.size),
        "n_resamples_dropped": n_resamples - int(eers.size),
        "seed": seed,
        "note": note,
    }


# --------------------------------------------------------------------------------------------------
# DSES breakdown
# --------------------------------------------------------------------------------------------------
def _cm_metrics(scores: np.ndarray, is_bonafide: np.ndarray, speakers: np.ndarray, settings: Mapping) -> dict:
    bonafide, spoof = scores[is_bonafide], scores[~is_bonafide]
    eer, threshold = compute_eer(bonafide, spoof)
    dcf = {key: settings[key] for key in ("p_spoof", "c_miss", "c_fa")}
    return {
        "n_bonafide": int(bonafide.size),
        "n_spoof": int(spoof.size),
        "n_speakers": int(np.unique(speakers).size),
        "eer_percent": 100 * eer,
        "eer_threshold": threshold,
        "min_dcf": compute_min_dcf(bonafide, spoof, **dcf)[0],
        "act_dcf": compute_act_dcf(bonafide, spoof, **dcf)[0],
        "cllr_bits": compute_cllr(bonafide, spoof),
        "ci": None
        if settings["n_bootstrap"] == 0
        else bootstrap_ci(
            scores,
            is_bonafide,
            speakers,
            n_resamples=settings["n_bootstrap"],
            confidence=settings["confidence"],
            seed=settings["seed"],
            **dcf,
        ),
    }


def _scores_for_entries(entries: Sequence, scores, utt_ids: list[str]) -> np.ndarray:
    """Scores aligned with ``entries``: from a CMScores (by id), a {utt_id: score} mapping or an array."""
    if isinstance(scores, CMScores):
        check_scores_against_protocol(scores, entries, "scores")
        by_id = dict(zip(scores.utt_ids, scores.scores.tolist()))
        return np.asarray([by_id[u] for u in utt_ids], dtype=np.float64)
    if isinstance(scores, Mapping):
        missing = [u for u in utt_ids if u not in scores]
        if missing:
            raise ScoreProtocolMismatch(f"scores: {len(missing)} trial(s) missing (first: {_first(missing)})")
        return _as_scores([scores[u] for u in utt_ids], "scores")
    values = _as_scores(scores, "scores")
    if values.size != len(entries):
        raise ScoreProtocolMismatch(f"scores: {values.size} scores for {len(entries)} protocol entries")
    return values


def _entry_columns(entries: Sequence, scores) -> dict[str, np.ndarray]:
    if not entries:
        raise ValueError("dses_breakdown: no protocol entries")
    columns = {
        name: _entry_column(entries, name) for name in ("utt_id", "speaker", "emotion", "system", "key")
    }
    bad = next((k for k in columns["key"] if k not in VALID_CM_KEYS), None)
    if bad is not None:
        raise EvaluationInputError(f"protocol entries: key {bad!r} is not bonafide|spoof")
    values = _scores_for_entries(entries, scores, columns["utt_id"])
    arrays = {name: np.asarray(col) for name, col in columns.items()}
    arrays["score"] = values
    arrays["is_bonafide"] = arrays["key"] == "bonafide"
    return arrays


def dses_breakdown(
    entries: Sequence,
    scores,
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    p_spoof: float = DCF_P_SPOOF,
    c_miss: float = DCF_C_MISS,
    c_fa: float = DCF_C_FA,
) -> dict:
    """CM metrics of an emotional-speech set, pooled and broken down by emotion and by TTS system.

    ``entries``: objects or mappings with ``utt_id``, ``speaker``, ``emotion``, ``system`` and ``key``
    (data_utils' DSES trials). ``scores``: a :class:`CMScores` (matched by id and checked against the
    entries), a ``{utt_id: score}`` mapping, or an array aligned with ``entries``.

    Groups: ``pooled`` (all bona fide vs all spoofs); ``per_emotion[e]`` (bona fide of emotion e vs spoofs
    of emotion e); ``per_system[s]`` (all bona fide vs the spoofs of system s); ``per_emotion_system[e][s]``
    (bona fide of emotion e vs the spoofs of system s in emotion e). Each group has its counts, EER (%),
    minDCF, actDCF, Cllr (bits) and a speaker-bootstrap CI (:func:`bootstrap_ci`, ``n_bootstrap``
    resamples; ``n_bootstrap=0`` skips the CIs, leaving ``ci`` None, for quick per-epoch checks). A group
    lacking bona fide or spoof trials is left out and listed in ``skipped``. Everything in the result is
    JSON-serialisable.
    """
    columns = _entry_columns(entries, scores)
    settings = {
        "p_spoof": p_spoof,
        "c_miss": c_miss,
        "c_fa": c_fa,
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "seed": seed,
    }
    is_bonafide, emotion, system = columns["is_bonafide"], columns["emotion"], columns["system"]
    skipped: list[str] = []

    def group(name: str, mask: np.ndarray) -> dict | None:
        n_bonafide = int(np.count_nonzero(mask & is_bonafide))
        n_spoof = int(np.count_nonzero(mask & ~is_bonafide))
        if n_bonafide == 0 or n_spoof == 0:
            skipped.append(f"{name} ({n_bonafide} bona fide, {n_spoof} spoof)")
            return None
        return _cm_metrics(columns["score"][mask], is_bonafide[mask], columns["speaker"][mask], settings)

    emotions = sorted(set(emotion.tolist()))
    systems = sorted(set(system[~is_bonafide].tolist()))
    result = {"settings": settings, "emotions": emotions, "systems": systems}
    result["pooled"] = group("pooled", np.ones(is_bonafide.size, dtype=bool))
    result["per_emotion"] = {}
    result["per_system"] = {}
    result["per_emotion_system"] = {}
    for e in emotions:
        metrics = group(f"emotion {e}", emotion == e)
        if metrics is not None:
            result["per_emotion"][e] = metrics
    for s in systems:
        metrics = group(f"system {s}", is_bonafide | (system == s))
        if metrics is not None:
            result["per_system"][s] = metrics
    for e in emotions:
        row = {}
        for s in systems:
            metrics = group(f"emotion {e} x system {s}", (emotion == e) & (is_bonafide | (system == s)))
            if metrics is not None:
                row[s] = metrics
        result["per_emotion_system"][e] = row
    result["skipped"] = skipped
    return result


def _ci_text(metrics: Mapping) -> str:
    if metrics["ci"] is None:
        return "–"
    low, high = metrics["ci"]["eer_percent"]
    return f"[{low:.2f}, {high:.2f}]"


def _metrics_table(title: str, label: str, groups: Mapping[str, Mapping], confidence: float) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"| {label} | bona fide | spoof | speakers | EER (%) | {confidence:.0%} CI | minDCF | actDCF "
        "| Cllr (bits) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, m in groups.items():
        lines.append(
            f"| {name} | {m['n_bonafide']} | {m['n_spoof']} | {m['n_speakers']} | {m['eer_percent']:.2f} | "
            f"{_ci_text(m)} | {m['min_dcf']:.4f} | {m['act_dcf']:.4f} | {m['cllr_bits']:.4f} |"
        )
    return lines + [""]


def format_dses_markdown(breakdown: Mapping) -> str:
    """Markdown tables of :func:`dses_breakdown`: pooled, per emotion, per system, emotion x system grid."""
    settings = breakdown["settings"]
    confidence = settings["confidence"]
    lines = ["## DSES evaluation", ""]
    if breakdown["pooled"] is not None:
        lines += _metrics_table("Pooled", "set", {"all": breakdown["pooled"]}, confidence)
    lines += _metrics_table(
        "Per emotion (bona fide and spoofs of that emotion)", "emotion", breakdown["per_emotion"], confidence
    )
    lines += _metrics_table(
        "Per TTS system (all bona fide vs that system)", "system", breakdown["per_system"], confidence
    )
    systems = breakdown["systems"]
    lines += [
        f"### EER (%) by emotion x system, with {confidence:.0%} CI",
        "",
        "| emotion | " + " | ".join(systems) + " |",
        "| --- |" + " --- |" * len(systems),
    ]
    for e, row in breakdown["per_emotion_system"].items():
        cells = [f"{row[s]['eer_percent']:.2f} {_ci_text(row[s])}" if s in row else "–" for s in systems]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    intervals = [m["ci"] for m in _all_groups(breakdown) if m["ci"] is not None]
    if intervals:
        resampling = ", ".join(sorted({ci["resampling"] for ci in intervals}))
        ci_text = (
            f"CIs: percentile bootstrap over {resampling}, {settings['n_bootstrap']} resamples, seed "
            f"{settings['seed']}."
        )
    else:
        ci_text = "No confidence intervals (n_bootstrap 0)."
    lines += [
        "",
        f"minDCF/actDCF: normalised, Pspoof {settings['p_spoof']}, Cmiss {settings['c_miss']}, Cfa "
        f"{settings['c_fa']} (ASVspoof 5); actDCF and Cllr treat scores as log-likelihood ratios. {ci_text}",
    ]
    lines += [f"Note: {n}." for n in sorted({ci["note"] for ci in intervals if ci["note"] is not None})]
    if breakdown["skipped"]:
        lines.append("Not evaluated (a class is missing): " + "; ".join(breakdown["skipped"]) + ".")
    return "\n".join(lines) + "\n"


def _all_groups(breakdown: Mapping) -> list[Mapping]:
    groups = [breakdown["pooled"]] if breakdown["pooled"] is not None else []
    groups += list(breakdown["per_emotion"].values()) + list(breakdown["per_system"].values())
    for row in breakdown["per_emotion_system"].values():
        groups += list(row.values())
    return groups


# --------------------------------------------------------------------------------------------------
# DET plots
# --------------------------------------------------------------------------------------------------
_DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def plot_det_curves(curves: Mapping[str, tuple], out_path: str | os.PathLike, title: str = "") -> Path:
    """Draw DET curves ``{label: (bona_fide_scores, spoof_scores)}`` on normal-deviate axes into a PNG.

    x: false acceptance of spoofs, y: false rejection of bona fide trials; each curve marks its EER point.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # plots only: keep module imports light
    from matplotlib.figure import Figure
    from scipy.special import ndtri

    low, high = _DET_TICKS[0], _DET_TICKS[-1]
    figure = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(figure)  # Agg canvas without touching pyplot's global backend
    axes = figure.add_subplot()
    for label, (bonafide, spoof) in curves.items():
        frr, far, _ = compute_det_curve(bonafide, spoof)
        eer, index = _eer_from_det(frr, far)
        x, y = ndtri(np.clip(far, low / 2, 1 - low / 2)), ndtri(np.clip(frr, low / 2, 1 - low / 2))
        (line,) = axes.plot(x, y, label=f"{label} (EER {100 * eer:.2f} %)")
        axes.plot(x[index], y[index], "o", color=line.get_color())
    ticks = ndtri(np.asarray(_DET_TICKS))
    tick_labels = [f"{100 * t:g}" for t in _DET_TICKS]
    limits = (ndtri(low), ndtri(high))
    axes.plot(limits, limits, ":", color="grey", linewidth=0.8)
    axes.set_xticks(ticks, tick_labels)
    axes.set_yticks(ticks, tick_labels)
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_xlabel("False acceptance rate of spoofs (%)")
    axes.set_ylabel("False rejection rate of bona fide (%)")
    axes.grid(True, linewidth=0.5, alpha=0.6)
    if title:
        axes.set_title(title)
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    out_path = Path(out_path)
    figure.savefig(out_path, dpi=120)
    return out_path


def plot_det(entries: Sequence, scores, out_dir: str | os.PathLike, prefix: str = "det") -> list[Path]:
    """Write one DET plot per emotion, ``<out_dir>/<prefix>_<emotion>.png``, a curve per TTS system and one
    for all systems together.

    ``entries`` and ``scores`` are as for :func:`dses_breakdown`; emotions lacking bona fide or spoofs are
    skipped.
    Returns the written paths.
    """
    columns = _entry_columns(entries, scores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_bonafide, emotion, system, values = (
        columns["is_bonafide"],
        columns["emotion"],
        columns["system"],
        columns["score"],
    )
    written = []
    for e in sorted(set(emotion.tolist())):
        bonafide = values[(emotion == e) & is_bonafide]
        spoof_mask = (emotion == e) & ~is_bonafide
        if bonafide.size == 0 or not spoof_mask.any():
            continue
        curves = {"all systems": (bonafide, values[spoof_mask])}
        for s in sorted(set(system[spoof_mask].tolist())):
            curves[s] = (bonafide, values[spoof_mask & (system == s)])
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", e)
        written.append(plot_det_curves(curves, out_dir / f"{prefix}_{safe}.png", title=f"DET: {e}"))
    return written


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
EXIT_BAD_INPUT = 1
EXIT_MISMATCH = 2


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Score an ASVspoof 2019 LA CM score file: pooled EER, min t-DCF and per-attack EERs."
    )
    parser.add_argument("--cm_scores", required=True, help="CM score file: UTT_ID SYSTEM KEY SCORE per line")
    parser.add_argument(
        "--asv_scores",
        help="organisers' ASV scores (ASVspoof2019.LA.asv.eval.gi.trl.scores.txt); without it no t-DCF",
    )
    parser.add_argument("--protocol", help="CM protocol the score file must match exactly (else exit code 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    prog = "evaluation.py"
    try:
        cm = read_score_file(args.cm_scores)
        if args.protocol:
            check_scores_against_protocol(cm, read_asvspoof_protocol(args.protocol), args.cm_scores)
        result = evaluate_asvspoof2019(cm, args.asv_scores)
    except ScoreProtocolMismatch as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except ValueError as exc:  # EvaluationInputError and metric preconditions
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result["cm_score_file"] = str(args.cm_scores)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_asvspoof2019_report(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
