"""Reports of score files: the ASVspoof 2019 LA evaluation (pooled EER, min t-DCF, per attack) and the DSES
tables (per emotion, per TTS system, emotion x system), as JSON-ready dicts, text and Markdown.

The numbers come from :mod:`antispoof.metrics`; figures are drawn by :mod:`antispoof.figures`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from antispoof.grouping import class_counts, column_masks
from antispoof.metadata import TrialTable
from antispoof.metrics import (
    ASVSPOOF5_COSTS,
    ASVSPOOF2019_TDCF_COST_MODEL,
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_BOOTSTRAP_SEED,
    DCFCosts,
    as_scores,
    bootstrap_ci,
    compute_act_dcf,
    compute_cllr,
    compute_eer,
    compute_min_dcf,
    compute_min_tdcf,
)
from antispoof.scorefiles import (
    CMScores,
    EvaluationInputError,
    ScoreProtocolMismatch,
    read_asv_scores,
    read_score_file,
)


# --------------------------------------------------------------------------------------------------
# ASVspoof 2019 LA
# --------------------------------------------------------------------------------------------------
def evaluate_asvspoof2019(
    cm_scores: CMScores | str | os.PathLike, asv_score_path: str | os.PathLike | None = None
) -> dict:
    """Pooled EER, min t-DCF and per-attack EERs of a CM score set or file, as the official code reports.

    Each attack's EER compares its spoofs with all bona fide trials; attacks are the spoof systems present
    (A07..A19 on eval, A01..A06 on dev). Without ``asv_score_path`` the t-DCF is skipped (``min_tdcf`` None).
    The result holds only JSON-serialisable values; EERs are in percent.
    """
    cm = cm_scores if isinstance(cm_scores, CMScores) else read_score_file(cm_scores)
    bonafide, spoof = cm.by_class()
    if bonafide.size == 0 or spoof.size == 0:
        raise EvaluationInputError(
            f"scores need both bona fide and spoof trials (got {bonafide.size} bona fide, {spoof.size} spoof)"
        )
    eer, eer_threshold = compute_eer(bonafide, spoof)
    per_attack, per_attack_counts = _per_attack_eer(cm, bonafide)
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
        asv = tdcf["asv"]
        result["min_tdcf"] = tdcf["min_tdcf"]
        result["min_tdcf_threshold"] = tdcf["cm_threshold"]
        result["asv"] = {
            "score_file": str(asv_score_path),
            "eer_percent": 100 * asv["eer"],
            "threshold": asv["threshold"],
            "pfa": float(asv["pfa"]),
            "pmiss": float(asv["pmiss"]),
            "pmiss_spoof": float(asv["pmiss_spoof"]),
        }
    return result


def _per_attack_eer(cm: CMScores, bonafide: np.ndarray) -> tuple[dict, dict]:
    """EER (%) and spoof count of each attack's spoofs against all bona fide trials, attacks sorted."""
    system_names = sorted(set(cm.systems))
    code_of = {name: code for code, name in enumerate(system_names)}
    system_codes = np.fromiter(map(code_of.__getitem__, cm.systems), dtype=np.int64, count=len(cm))
    is_spoof = ~cm.is_bonafide
    per_attack, counts = {}, {}
    for code in np.unique(system_codes[is_spoof]):
        attack = system_names[code]
        attack_scores = cm.scores[(system_codes == code) & is_spoof]
        per_attack[attack] = 100 * compute_eer(bonafide, attack_scores)[0]
        counts[attack] = int(attack_scores.size)
    return per_attack, counts


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
# DSES tables
# --------------------------------------------------------------------------------------------------
def cm_metrics(scores: np.ndarray, is_bonafide: np.ndarray, speakers: np.ndarray, settings: Mapping) -> dict:
    """Counts, EER (%) and its threshold, minDCF, actDCF, Cllr (bits) of one group, and a speaker-bootstrap
    CI (:func:`bootstrap_ci`; None when ``settings['n_bootstrap']`` is 0)."""
    bonafide, spoof = scores[is_bonafide], scores[~is_bonafide]
    eer, threshold = compute_eer(bonafide, spoof)
    costs = DCFCosts(settings["p_spoof"], settings["c_miss"], settings["c_fa"])
    ci = None
    if settings["n_bootstrap"]:
        ci = bootstrap_ci(
            scores,
            is_bonafide,
            speakers,
            n_resamples=settings["n_bootstrap"],
            confidence=settings["confidence"],
            seed=settings["seed"],
            costs=costs,
        )
    return {
        "n_bonafide": int(bonafide.size),
        "n_spoof": int(spoof.size),
        "n_speakers": int(np.unique(speakers).size),
        "eer_percent": 100 * eer,
        "eer_threshold": threshold,
        "min_dcf": compute_min_dcf(bonafide, spoof, costs)[0],
        "act_dcf": compute_act_dcf(bonafide, spoof, costs)[0],
        "cllr_bits": compute_cllr(bonafide, spoof),
        "ci": ci,
    }


def dses_breakdown(
    table: TrialTable,
    scores,
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    costs: DCFCosts = ASVSPOOF5_COSTS,
) -> dict:
    """CM metrics of an emotional-speech set, pooled and broken down by emotion and by TTS system.

    ``table``: the trials with ``utt_id``, ``speaker``, ``emotion``, ``system`` and ``key`` columns
    (:meth:`TrialTable.from_trials` of DSES trials, or :func:`antispoof.metadata.read_metadata` of
    ``dses_protocol.tsv``); ``scores``: an array aligned with its rows (:meth:`TrialTable.scores_of`).

    Groups (:func:`antispoof.grouping.column_masks`): ``pooled``; ``per_emotion[e]`` (bona fide of emotion e
    vs spoofs of emotion e); ``per_system[s]`` (all bona fide vs the spoofs of system s);
    ``per_emotion_system[e][s]`` (bona fide of emotion e vs the spoofs of system s in emotion e). Each group
    has :func:`cm_metrics` (``n_bootstrap=0`` skips the CIs, for quick per-epoch checks). A group lacking bona
    fide or spoof trials is left out and listed in ``skipped``. Everything in the result is JSON-serialisable.
    """
    values = as_scores(scores, "scores")
    if values.size != len(table):
        raise ScoreProtocolMismatch(f"scores: {values.size} scores for {len(table)} trials of {table.source}")
    is_bonafide, speakers = table.is_bonafide, table.column("speaker")
    settings = {
        **costs._asdict(),  # p_spoof, c_miss, c_fa
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "seed": seed,
    }
    skipped: list[str] = []

    def group(name: str, mask: np.ndarray) -> dict | None:
        n_bonafide, n_spoof = class_counts(is_bonafide, mask)
        if n_bonafide == 0 or n_spoof == 0:
            skipped.append(f"{name} ({n_bonafide} bona fide, {n_spoof} spoof)")
            return None
        return cm_metrics(values[mask], is_bonafide[mask], speakers[mask], settings)

    def groups(prefix: str, masks: Mapping[str, np.ndarray]) -> dict:
        found = {name: group(f"{prefix}{name}", mask) for name, mask in masks.items()}
        return {name: metrics for name, metrics in found.items() if metrics is not None}

    emotions, systems = column_masks(table, "emotion"), column_masks(table, "system")
    result = {"settings": settings, "emotions": list(emotions), "systems": list(systems)}
    result["pooled"] = group("pooled", np.ones(len(table), dtype=bool))
    result["per_emotion"] = groups("emotion ", emotions)
    result["per_system"] = groups("system ", systems)
    result["per_emotion_system"] = {
        e: groups(f"emotion {e} x system ", {s: e_mask & s_mask for s, s_mask in systems.items()})
        for e, e_mask in emotions.items()
    }
    result["skipped"] = skipped
    return result


def ci_text(interval: list[float] | None, digits: int = 2) -> str:
    """``[low, high]`` for a table cell, ``–`` when there is no interval."""
    if interval is None:
        return "–"
    low, high = interval
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _metrics_table(title: str, label: str, groups: Mapping[str, Mapping], confidence: float) -> list[str]:
    lines = [
        f"### {title}",
        "",
        f"| {label} | bona fide | spoof | speakers | EER (%) | {confidence:.0%} CI | minDCF | actDCF "
        "| Cllr (bits) |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, m in groups.items():
        interval = m["ci"]["eer_percent"] if m["ci"] else None
        lines.append(
            f"| {name} | {m['n_bonafide']} | {m['n_spoof']} | {m['n_speakers']} | {m['eer_percent']:.2f} | "
            f"{ci_text(interval)} | {m['min_dcf']:.4f} | {m['act_dcf']:.4f} | {m['cllr_bits']:.4f} |"
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
        cells = [
            f"{row[s]['eer_percent']:.2f} {ci_text(row[s]['ci']['eer_percent'] if row[s]['ci'] else None)}"
            if s in row
            else "–"
            for s in systems
        ]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return "\n".join(lines + _dses_notes(breakdown)) + "\n"


def _dses_notes(breakdown: Mapping) -> list[str]:
    settings = breakdown["settings"]
    intervals = [m["ci"] for m in _all_groups(breakdown) if m["ci"] is not None]
    if intervals:
        resampling = ", ".join(sorted({ci["resampling"] for ci in intervals}))
        ci_note = (
            f"CIs: percentile bootstrap over {resampling}, {settings['n_bootstrap']} resamples, seed "
            f"{settings['seed']}."
        )
    else:
        ci_note = "No confidence intervals (n_bootstrap 0)."
    lines = [
        "",
        f"minDCF/actDCF: normalised, Pspoof {settings['p_spoof']}, Cmiss {settings['c_miss']}, Cfa "
        f"{settings['c_fa']} (ASVspoof 5); actDCF and Cllr treat scores as log-likelihood ratios. {ci_note}",
    ]
    lines += [f"Note: {n}." for n in sorted({ci["note"] for ci in intervals if ci["note"] is not None})]
    if breakdown["skipped"]:
        lines.append("Not evaluated (a class is missing): " + "; ".join(breakdown["skipped"]) + ".")
    return lines


def _all_groups(breakdown: Mapping) -> list[Mapping]:
    groups = [breakdown["pooled"]] if breakdown["pooled"] is not None else []
    groups += list(breakdown["per_emotion"].values()) + list(breakdown["per_system"].values())
    for row in breakdown["per_emotion_system"].values():
        groups += list(row.values())
    return groups


# --------------------------------------------------------------------------------------------------
# grouped breakdown (antispoof.breakdown)
# --------------------------------------------------------------------------------------------------
FEW_SPEAKERS = 5  # below this many resampled units the bootstrap says little, and the notes say so


def _pm(value: float, spread: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} ± {spread:.{digits}f}"


def _with_ci(value: float, interval: list[float] | None, digits: int = 2, sign: str = "") -> str:
    text = f"{value:{sign}.{digits}f}"
    return text if interval is None else f"{text} {ci_text(interval, digits)}"


def _p_text(p: float | None) -> str:
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _group_table(column: str, groups: Mapping[str, Mapping], n_runs: int) -> list[str]:
    header = (
        f"| {column} | bona fide | spoof | speakers | EER (%) [CI] | bona fide rejected (%) [CI] "
        "| spoofs accepted (%) [CI] | minDCF | actDCF | Cllr (bits) |"
    )
    rule = "| --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: |"
    if n_runs > 1:
        header += " EER (%) mean ± std | rejected (%) mean ± std |"
        rule += " --- | --- |"
    lines = [header, rule]
    for name, g in groups.items():
        row = (
            f"| {name} | {g['n_bonafide']} | {g['n_spoof']} | {g['n_speakers']} | "
            f"{_with_ci(g['eer_percent'], g['eer_ci'])} | "
            f"{_with_ci(g['bonafide_rejection_percent'], g['bonafide_rejection_ci'])} | "
            f"{_with_ci(g['spoof_acceptance_percent'], g['spoof_acceptance_ci'])} | "
            f"{g['min_dcf']:.4f} | {g['act_dcf']:.4f} | {g['cllr_bits']:.4f} |"
        )
        if n_runs > 1:
            runs = g["across_runs"]
            row += (
                f" {_pm(runs['eer_percent_mean'], runs['eer_percent_std'])} | "
                f"{_pm(runs['bonafide_rejection_percent_mean'], runs['bonafide_rejection_percent_std'])} |"
            )
        lines.append(row)
    return lines + [""]


def reference_table(reference: str, groups: Mapping[str, Mapping], alpha: float) -> list[str]:
    compared = {name: g["vs_reference"] for name, g in groups.items() if "vs_reference" in g}
    lines = [
        f"Against **{reference}** (differences in percentage points; paired speaker bootstrap; Holm over the "
        f"{len(compared)} comparisons of each metric; **bold**: significant at {alpha:g} after Holm):",
        "",
        "| group | Δ EER [CI] | p | p (Holm) | Δ bona fide rejected [CI] | p | p (Holm) |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, v in compared.items():
        cells = [name]
        for short in ("eer", "bonafide_rejection"):
            metric = "eer_percent" if short == "eer" else "bonafide_rejection_percent"
            delta = _with_ci(v[f"delta_{metric}"], v[f"delta_{short}_ci"], sign="+")
            if v[f"significant_{short}"]:
                delta = f"**{delta}**"
            cells += [delta, _p_text(v[f"p_{short}"]), _p_text(v[f"p_{short}_holm"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def format_breakdown_markdown(result: Mapping, title: str = "Breakdown") -> str:
    """Markdown of :func:`antispoof.breakdown.breakdown`: per column a table of the groups' numbers and one of
    their differences to the reference group, then how the numbers were made."""
    settings = result["settings"]
    lines = [f"## {title}", ""]
    n_runs = result["n_runs"]
    for column, groups in result["groups"].items():
        lines += [f"### By {column}", ""] + _group_table(column, groups, n_runs)
        if any("vs_reference" in g for g in groups.values()):
            lines += reference_table(result["reference_group"], groups, settings["alpha"])
    return "\n".join(lines + breakdown_notes(result)) + "\n"


def breakdown_notes(result: Mapping) -> list[str]:
    """How the numbers of a breakdown were made: threshold, calibration, bootstrap, runs, skipped groups."""
    settings = result["settings"]
    threshold = result["threshold"]
    shown = f"{threshold:.6g}" if isinstance(threshold, float) else ", ".join(f"{t:.6g}" for t in threshold)
    lines = [
        f"- Fixed threshold: {shown} ({result.get('threshold_source', 'given')}); a score >= the threshold is "
        "called bona fide. EER: each group's own equal error rate (its threshold re-optimised inside it).",
        "- actDCF and Cllr: "
        + (
            f"on calibrated LLRs ({result.get('calibration_source', 'calibration given')})."
            if result["calibrated"]
            else "on raw scores (no calibration): they measure how far the scores are from calibrated LLRs."
        )
        + f" ASVspoof 5 costs: Pspoof {settings['p_spoof']}, Cmiss {settings['c_miss']}, Cfa {settings['c_fa']}.",
    ]
    if settings["n_bootstrap"]:
        lines.append(
            f"- CIs: {settings['confidence']:.0%} percentile bootstrap over {settings['resampling']} "
            f"({settings['n_clusters']}), {settings['n_bootstrap']} resamples, seed {settings['seed']}, the same "
            "resamples for every group (paired); p-values two-sided from the paired differences (never below "
            "2^(1 - speakers))."
        )
        if settings["n_clusters"] < FEW_SPEAKERS:
            lines.append(
                f"- Only {settings['n_clusters']} {settings['resampling'].split()[0]} to resample: the CIs and "
                "p-values are rough; read the point estimates."
            )
    else:
        lines.append("- No confidence intervals or p-values (no bootstrap).")
    if result["n_runs"] > 1:
        lines.append(
            f"- {result['n_runs']} runs over the same trials: numbers and CIs on all runs' trials pooled "
            "(each run decides at its own threshold; scores shifted so the thresholds coincide); mean ± std "
            "(sample) over the runs beside them."
        )
    if result["skipped"]:
        lines.append("- Not evaluated (a class is missing): " + "; ".join(result["skipped"]) + ".")
    return lines
