"""``main.py --eval --eval_set NAME=PATH ...``: score a detector on named evaluation sets (ASVspoof 2021 LA/DF,
In-the-Wild, DSES, EmoSpoof-TTS, EmoFake, ...), in the order given, and write per set ``NAME/scores.txt`` and
``NAME/metrics.json`` and one ``summary.md`` with a row per set. A set whose folder fails its layout check is
reported in one line and the others still run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from torch import nn

from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown, fixed_threshold
from antispoof.errors import first_line
from antispoof.evalsets import EvalSet, read_eval_set, trial_table
from antispoof.evalsets.asvspoof2021 import official_table, read_asv_scores
from antispoof.experiment import Run
from antispoof.fileio import write_text_atomically
from antispoof.metrics import compute_eer
from antispoof.protocols import ProtocolError, check_audio_exists
from antispoof.recipes.antispoofing import write_and_check_scores
from antispoof.recipes.common import score_trials_resumably
from antispoof.reports import ci_text


def read_sets(run: Run, specs: Mapping[str, str]) -> dict[str, EvalSet | str]:
    """Each set read and its audio checked; a set that fails holds its one-line error instead."""
    sets: dict[str, EvalSet | str] = {}
    for name, path in specs.items():
        try:
            evalset = read_eval_set(name, path)
            check_audio_exists(evalset.trials, f"{name} ({path})")
        except (ProtocolError, ValueError, OSError) as exc:
            sets[name] = first_line(exc)
            run.log(f"{name}: skipped: {sets[name]}")
            continue
        n_bonafide = sum(t.key == "bonafide" for t in evalset.trials)
        run.log(f"{name}: {len(evalset.trials)} trials ({n_bonafide} bona fide) from {path}")
        sets[name] = evalset
    return sets


def set_metrics(evalset: EvalSet, scores: np.ndarray, n_bootstrap: int) -> dict:
    """EER (and where it applies the official 2021 table and min t-DCF) and the breakdown by each attribute."""
    table = trial_table(evalset)
    is_bonafide = table.is_bonafide
    if is_bonafide.all() or not is_bonafide.any():
        raise ProtocolError(f"{evalset.name}: needs bona fide and spoof trials for an EER")
    eer, threshold = compute_eer(scores[is_bonafide], scores[~is_bonafide])
    result = {
        "set": evalset.name,
        "n_trials": len(table),
        "n_bonafide": int(is_bonafide.sum()),
        "n_spoof": int((~is_bonafide).sum()),
        "eer_percent": 100 * eer,
        "eer_threshold": threshold,
        "metrics": list(evalset.metrics),
        "notes": list(evalset.notes),
    }
    if evalset.official_factors:
        asv = read_asv_scores(evalset.asv["metadata"], evalset.asv["scores"]) if evalset.asv else None
        result["official"] = official_table(table.columns, scores, evalset.official_factors, asv)
        if asv is not None:
            result["min_tdcf"] = result["official"]["min_tdcf"]["Pooled"]["Pooled"]
    fixed, source = fixed_threshold(table, scores)
    settings = BreakdownSettings(n_bootstrap=n_bootstrap)
    result["breakdown"] = breakdown(
        table,
        [ScoredRun(scores, fixed, None, "scores.txt")],
        evalset.attributes,
        evalset.reference_group,
        settings,
    )
    result["breakdown"]["threshold_source"] = source
    result["eer_ci"] = result["breakdown"]["pooled"]["eer_ci"]
    return result


def evaluate_set(model: nn.Module, evalset: EvalSet, run: Run, identity: dict) -> dict:
    out_dir = run.out_dir / evalset.name
    logits = score_trials_resumably(
        model, evalset.trials, run, out_dir / "shards", f"scoring {evalset.name}", identity
    )
    scores = logits[:, 1]

    def report() -> dict:
        write_and_check_scores(out_dir / "scores.txt", evalset.trials, scores)
        result = set_metrics(evalset, scores, run.config.dses_bootstrap)
        write_text_atomically(out_dir / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
        return result

    return run.on_main(report)


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_markdown(results: Mapping[str, dict], specs: Mapping[str, str]) -> str:
    """One row per set, in the order given: trials, EER with its CI, min t-DCF, or why the set was skipped."""
    lines = [
        "# Evaluation sets",
        "",
        "| set | trials | bona fide | spoof | EER % | 95% CI | min t-DCF | path |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | - | - | - | - | - | - | skipped: {result['error']} |")
            continue
        lines.append(
            f"| {name} | {result['n_trials']} | {result['n_bonafide']} | {result['n_spoof']} | "
            f"{result['eer_percent']:.2f} | {ci_text(result['eer_ci'])} | {_fmt(result.get('min_tdcf'), 4)} | "
            f"{specs[name]} |"
        )
    lines += [
        "",
        "Per-set details (breakdown by attribute, official per-condition tables): `NAME/metrics.json`.",
    ]
    return "\n".join(lines) + "\n"


def weights_identity(weights: str | None) -> dict:
    """The weights file as shards remember it (path, size, modification time): other weights, other shards."""
    if not weights or not os.path.isfile(weights):
        return {"weights": weights}
    stat = os.stat(weights)
    return {
        "weights": str(Path(weights).resolve()),
        "weights_size": stat.st_size,
        "weights_mtime_ns": stat.st_mtime_ns,
    }


def evaluate(
    run: Run, load_model: Callable[[], nn.Module], specs: Mapping[str, str], weights: str | None
) -> dict:
    """Read every set (a broken one is one line), load the model once, score the readable sets in order."""
    sets = read_sets(run, specs)
    if all(isinstance(s, str) for s in sets.values()):
        raise SystemExit(
            "error: no eval set could be read: " + "; ".join(f"{n}: {e}" for n, e in sets.items())
        )
    model = load_model()
    identity = weights_identity(weights)
    results: dict[str, dict] = {}
    for name, evalset in sets.items():
        if isinstance(evalset, str):
            results[name] = {"error": evalset}
            continue
        results[name] = evaluate_set(model, evalset, run, identity)
        run.log(f"{name}: EER {results[name]['eer_percent']:.3f} %")
    if run.is_main:
        summary = summary_markdown(results, specs)
        write_text_atomically(run.out_dir / "summary.md", summary)
        print(summary)
    return {"eval_sets": {name: _headline(result) for name, result in results.items()}}


def _headline(result: dict) -> dict:
    """What the run's top-level metrics.json keeps of a set (the rest is in NAME/metrics.json)."""
    keys = ("error", "n_trials", "eer_percent", "eer_ci", "min_tdcf")
    return {key: result[key] for key in keys if key in result}
