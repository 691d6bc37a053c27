"""ASVspoof 2021 LA and DF evaluation sets, and the per-condition table of the official eval-package.

Layout (https://github.com/asvspoof-challenge/2021, ``eval-package/README.md``, ``config.py``, ``main.py``):

* audio: ``ASVspoof2021_LA_eval/flac/<TRIAL>.flac`` and ``ASVspoof2021_DF_eval/flac/<TRIAL>.flac`` (the DF parts
  all unpack into the same ``flac`` folder);
* keys (``LA-keys-full.tar.gz`` / ``DF-keys-full.tar.gz`` unpack to ``keys/LA/...``, ``keys/DF/...``; the older
  ``LA-keys-stage-1.tar.gz`` to ``keys/CM``, ``keys/ASV``):
  - LA ``CM/trial_metadata.txt``: ``SPK TRIAL CODEC TRANSMISSION ATTACK KEY TRIM SUBSET``
    (e.g. ``LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval``);
  - LA ``ASV/trial_metadata.txt``: the same columns with KEY target|nontarget|spoof, and
    ``ASV/ASVTorch_Kaldi/score.txt``: ``ASV_SPK TRIAL SCORE``, line by line with the ASV metadata (the package
    joins them by position);
  - DF ``CM/trial_metadata.txt``: ``SPK TRIAL COMPRESSION SOURCE ATTACK KEY TRIM SUBSET VOCODER TASK TEAM
    GENDER_PAIR LANGUAGE``.

Results follow the package: only trials of the ``eval`` subset (the progress and hidden subsets are not part of
the official evaluation), EERs and revised min t-DCFs per (attack or vocoder) x codec condition, a condition of a
spoof-only factor pairing all bona fide trials with that factor's spoofs, and the t-DCF's C0, C1, C2 computed
per condition from the organisers' ASV scores (the package's ``--recompute-c012``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antispoof.evalsets.base import (
    EvalSet,
    check_key,
    first_existing,
    protocol_lines,
    require_dir,
    split_line,
)
from antispoof.metrics import ASVScores, compute_eer, compute_min_tdcf2021, tdcf2021_coefficients
from antispoof.protocols import ProtocolError, Trial

OFFICIAL_SUBSET = "eval"
POOLED = "Pooled"


@dataclass(frozen=True)
class Factor:
    """One axis of the official table: a column, its values (in the package's order) and their printed tags.
    ``spoof_only``: the value describes spoofs only (attack, vocoder), so bona fide trials are all kept."""

    column: str
    values: tuple[str, ...]
    tags: tuple[str, ...]
    spoof_only: bool


LA_ATTACKS = tuple(f"A{i:02d}" for i in range(7, 20))
LA_CODECS = ("none", "alaw", "pstn", "g722", "ulaw", "gsm", "opus")
LA_FACTORS = (
    Factor("system", LA_ATTACKS, LA_ATTACKS, spoof_only=True),
    Factor("codec", LA_CODECS, tuple(f"C{i}" for i in range(1, 8)), spoof_only=False),
)
DF_VOCODERS = (
    "traditional_vocoder",
    "waveform_concatenation",
    "neural_vocoder_autoregressive",
    "neural_vocoder_nonautoregressive",
    "unknown",
)
DF_CODECS = (
    "nocodec",
    "low_mp3",
    "high_mp3",
    "low_m4a",
    "high_m4a",
    "low_ogg",
    "high_ogg",
    "mp3m4a",
    "oggm4a",
)
DF_FACTORS = (
    Factor(
        "vocoder",
        DF_VOCODERS,
        ("Traditional", "Wav.Concat.", "Neural AR", "Neural non-AR", "Unknown"),
        spoof_only=True,
    ),
    Factor("compression", DF_CODECS, tuple(f"C{i}" for i in range(1, 10)), spoof_only=False),
)

LA_KEY_DIRS = ("keys/LA", "keys", "LA-keys-full/keys/LA", "LA-keys-stage-1/keys")
DF_KEY_DIRS = ("keys/DF", "keys", "DF-keys-full/keys/DF")
ASV_SCORE_NAMES = ("ASV/ASVTorch_Kaldi/score.txt", "ASV/ASVtorch_kaldi/score.txt")
LA_COLUMNS = ("speaker", "utt_id", "codec", "transmission", "system", "key", "trim", "subset")
DF_COLUMNS = LA_COLUMNS[:2] + ("compression", "source", "system", "key", "trim", "subset", "vocoder")


def _keys_dir(root: Path, candidates: Sequence[str], track: str) -> Path:
    found = first_existing(
        root, [f"{c}/CM/trial_metadata.txt" for c in candidates], f"ASVspoof 2021 {track} keys"
    )
    return found.parent.parent


def _read_cm_keys(path: Path, columns: Sequence[str], audio: Path) -> list[Trial]:
    trials = []
    for number, line in protocol_lines(path):
        row = dict(zip(columns, split_line(path, number, line, len(columns))))
        if row["subset"] != OFFICIAL_SUBSET:
            continue
        check_key(path, number, row["key"])
        extra = {c: row[c] for c in columns if c not in ("speaker", "utt_id", "system", "key")}
        trials.append(
            Trial(
                row["utt_id"],
                row["speaker"],
                row["system"],
                row["key"],
                audio / f"{row['utt_id']}.flac",
                extra=extra,
            )
        )
    if not trials:
        raise ProtocolError(f"{path}: no trial of the {OFFICIAL_SUBSET!r} subset")
    return trials


def _read_2021_set(root: Path, track: str, key_dirs, columns, attributes, factors) -> tuple[EvalSet, Path]:
    """The CM trials of a 2021 track's eval subset (audio at ``ASVspoof2021_<track>_eval/flac``) and its keys folder."""
    keys = _keys_dir(root, key_dirs, track)
    folder = f"ASVspoof2021_{track}_eval/flac"
    audio = require_dir(root / folder, f"ASVspoof 2021 {track} audio ({folder})")
    trials = _read_cm_keys(keys / "CM" / "trial_metadata.txt", columns, audio)
    evalset = EvalSet(f"{track}21", trials, attributes, ("eer", "official_2021"))
    evalset.official_factors = factors
    return evalset, keys


def read_la2021(root: Path) -> EvalSet:
    """ASVspoof 2021 LA eval: attributes attack (system), codec, transmission; EER and revised min t-DCF."""
    attributes = ("system", "codec", "transmission")
    evalset, keys = _read_2021_set(root, "LA", LA_KEY_DIRS, LA_COLUMNS, attributes, LA_FACTORS)
    asv_metadata = keys / "ASV" / "trial_metadata.txt"
    try:
        asv_scores = first_existing(keys, ASV_SCORE_NAMES, "organisers' ASV scores")
    except ProtocolError as exc:
        evalset.notes.append(f"no min t-DCF: {exc}")
        return evalset
    if asv_metadata.is_file():
        evalset.asv = {"metadata": asv_metadata, "scores": asv_scores}
    else:
        evalset.notes.append(f"no min t-DCF: {asv_metadata} not found")
    return evalset


def read_df2021(root: Path) -> EvalSet:
    """ASVspoof 2021 DF eval: attributes attack (system), compression, source corpus, vocoder; EER (no t-DCF)."""
    attributes = ("system", "compression", "source", "vocoder")
    return _read_2021_set(root, "DF", DF_KEY_DIRS, DF_COLUMNS, attributes, DF_FACTORS)[0]


def read_asv_scores(metadata: Path, scores: Path) -> dict[str, np.ndarray]:
    """The organisers' ASV scores of the eval subset with their key and conditions (columns as in the CM keys).

    The score file is paired with the metadata line by line, as the package does; a differing trial id on the
    same line is an error naming both files."""
    rows = [split_line(metadata, n, line, len(LA_COLUMNS)) for n, line in protocol_lines(metadata)]
    score_rows = [split_line(scores, n, line, 3) for n, line in protocol_lines(scores)]
    if len(rows) != len(score_rows):
        raise ProtocolError(f"{scores}: {len(score_rows)} ASV scores for {len(rows)} trials in {metadata}")
    for number, (row, score_row) in enumerate(zip(rows, score_rows), 1):
        if row[1] != score_row[1]:
            raise ProtocolError(
                f"{scores}:{number}: trial {score_row[1]} but {metadata} line {number} is {row[1]}"
            )
    keep = [i for i, row in enumerate(rows) if row[7] == OFFICIAL_SUBSET]
    columns = {name: np.array([rows[i][k] for i in keep]) for k, name in enumerate(LA_COLUMNS)}
    columns["score"] = np.array([float(score_rows[i][2]) for i in keep])
    return columns


def _condition(
    columns: Mapping[str, np.ndarray], is_spoof: np.ndarray, factor: Factor, value: str
) -> np.ndarray:
    if value == POOLED:
        return np.ones(is_spoof.size, dtype=bool)
    match = columns[factor.column] == value
    return match | ~is_spoof if factor.spoof_only else match


def official_table(
    columns: Mapping[str, np.ndarray],
    scores: np.ndarray,
    factors: Sequence[Factor],
    asv: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """EER (%) and min t-DCF per condition of two factors (each with ``Pooled``), as the package's
    ``compute_decomposed_mintdcf_eer``: ``{"eer_percent": {row: {col: v}}, "min_tdcf": ...}`` with the tags as
    names; None where a condition lacks a class (NaN in the package)."""
    rows, cols = factors
    is_spoof = columns["key"] == "spoof"
    asv_spoof = None if asv is None else asv["key"] == "spoof"
    eers: dict = {}
    tdcfs: dict = {}
    for row_value, row_tag in zip(rows.values + (POOLED,), rows.tags + (POOLED,)):
        for col_value, col_tag in zip(cols.values + (POOLED,), cols.tags + (POOLED,)):
            mask = _condition(columns, is_spoof, rows, row_value) & _condition(
                columns, is_spoof, cols, col_value
            )
            bonafide, spoof = scores[mask & ~is_spoof], scores[mask & is_spoof]
            eer = tdcf = None
            if bonafide.size and spoof.size:
                eer = 100 * compute_eer(bonafide, spoof)[0]
                if asv is not None:
                    tdcf = _condition_tdcf(asv, asv_spoof, rows, cols, row_value, col_value, bonafide, spoof)
            eers.setdefault(row_tag, {})[col_tag] = eer
            tdcfs.setdefault(row_tag, {})[col_tag] = tdcf
    return {"eer_percent": eers, "min_tdcf": tdcfs if asv is not None else None}


def _condition_tdcf(asv, asv_spoof, rows, cols, row_value, col_value, bonafide, spoof) -> float | None:
    mask = _condition(asv, asv_spoof, rows, row_value) & _condition(asv, asv_spoof, cols, col_value)
    keys, values = asv["key"][mask], asv["score"][mask]
    trio = ASVScores(values[keys == "target"], values[keys == "nontarget"], values[keys == "spoof"])
    try:
        value = compute_min_tdcf2021(bonafide, spoof, tdcf2021_coefficients(trio))
    except ValueError:  # fewer than 3 distinct scores in this condition: the package stops, we leave it out
        return None
    return None if np.isnan(value) else value
