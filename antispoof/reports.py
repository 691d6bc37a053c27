"""Reports of score files: the ASVspoof 2019 LA evaluation (pooled EER, min t-DCF, per attack) and the DSES
tables (per emotion, per TTS system, emotion x system), as JSON-ready dicts, text and Markdown.

The numbers come from :mod:`antispoof.metrics`; figures are drawn by :mod:`antispoof.figures`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from antispoof.metrics import (
    ASVSPOOF2019_TDCF_COST_MODEL,
    DEFAULT_PERMUTATIONS,
    EXACT_SWAP_SPEAKERS,
    compute_eer,
    compute_min_tdcf,
)
from antispoof.scorefiles import (
    CMScores,
    EvaluationInputError,
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
def ci_text(interval: list[float] | None, digits: int = 2) -> str:
    """``[low, high]`` for a table cell, ``–`` when there is no interval."""
    if interval is None:
        return "–"
    low, high = interval
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


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
        f"Against **{reference}** (differences in percentage points; CIs: paired speaker bootstrap; p: paired "
        f"randomisation test swapping speakers' groups; Holm over the "
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
            "resamples for every group (paired). p-values: two-sided paired randomisation test against the "
            "reference group: the group and reference trials of some speakers trade places, the difference is "
            "recomputed for every such swap pattern (all 2^K for K speakers holding both groups, up to "
            f"{EXACT_SWAP_SPEAKERS}; else {settings.get('n_permutations', DEFAULT_PERMUTATIONS)} random ones), "
            'and p is the share at least as far from their mean as the observed one. Exact under "the group '
            'does not matter within a speaker"; at least 2^(1 - K) for groups of equal size; conservative when '
            "errors are few. A speaker lacking one of the two groups is not swapped; with no speaker holding both "
            "there is no p-value."
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


def emotion_verdict(result: Mapping, column: str = "emotion") -> str:
    """One line answering "does this detector fail on emotional speech?" from a breakdown's paired tests:
    which groups differ from the reference in EER or bona fide rejection at the fixed threshold (Holm)."""
    groups, reference = result["groups"].get(column, {}), result.get("reference_group")
    tested = {name: g["vs_reference"] for name, g in groups.items() if "vs_reference" in g}
    n = result["settings"].get("n_clusters")
    head = (
        f"Verdict ({column} vs {reference}, Holm-corrected, {n} {result['settings'].get('resampling', '')})"
    )
    if not tested or all(v["p_eer"] is None for v in tested.values()):
        return f"{head}: not tested (no reference group or no bootstrap)"
    findings = [
        f"{name}: {label} {v[f'delta_{metric}']:+.2f} pp (p={v[f'p_{short}_holm']:.3g})"
        for name, v in tested.items()
        for metric, short, label in (
            ("bonafide_rejection_percent", "bonafide_rejection", "bona fide rejection"),
            ("eer_percent", "eer", "EER"),
        )
        if v.get(f"significant_{short}")
    ]
    if findings:
        return f"{head}: differs significantly for " + "; ".join(findings)
    name, v = max(tested.items(), key=lambda item: abs(item[1]["delta_bonafide_rejection_percent"]))
    return (
        f"{head}: no {column} differs significantly from {reference} (largest bona fide rejection difference: "
        f"{name} {v['delta_bonafide_rejection_percent']:+.2f} pp)"
    )
