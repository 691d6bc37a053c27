"""The comparison report of :mod:`antispoof.compare`: its figures and its Markdown (``report.md``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from antispoof import figures
from antispoof.compare import FIGURES, Experiment, display_order, emotion_system_matrix, per_group_scores
from antispoof.reports import breakdown_notes, ci_text, reference_table

EMOTION = "emotion"
BAR_METRICS = {  # figure key: (metric, name in vs_reference, title, axis label)
    "eer": ("eer_percent", "eer", "EER per emotion (each emotion's own threshold), with 95 % CI", "EER (%)"),
    "rejection": (
        "bonafide_rejection_percent",
        "bonafide_rejection",
        "Bona fide speech rejected at the fixed threshold, with 95 % CI",
        "bona fide rejected (%)",
    ),
}


def _bar_values(analyses: Mapping[str, Mapping], metric: str, short: str) -> dict:
    values = {}
    for detector, analysis in analyses.items():
        groups = analysis["groups"].get(EMOTION, {})
        values[detector] = {
            emotion: {
                "value": groups[emotion][metric],
                "ci": groups[emotion][metric.replace("_percent", "_ci")],
                "runs": groups[emotion].get("across_runs", {}).get(f"{metric}_runs"),
                "significant": groups[emotion].get("vs_reference", {}).get(f"significant_{short}"),
            }
            for emotion in display_order(list(groups))
        }
    return values


def plot_emotion_bars(analyses: Mapping[str, Mapping], key: str, out_path: Path) -> Path:
    """One ``BAR_METRICS`` chart (``key``: "eer" or "rejection") per emotion, a bar per detector (analysis)."""
    metric, short, title, ylabel = BAR_METRICS[key]
    reference = next(iter(analyses.values()))["reference_group"]
    values = _bar_values(analyses, metric, short)
    return figures.plot_grouped_bars(
        values, out_path, title, ylabel, significant_label=f"differs from {reference} (Holm)"
    )


def draw_figures(
    detectors: Mapping[str, Sequence[Experiment]], analyses: Mapping[str, Mapping], out_dir: Path
) -> dict[str, Path]:
    """Write the comparison figures into ``out_dir``; returns ``{figure key: path}``."""
    written = {key: plot_emotion_bars(analyses, key, out_dir / FIGURES[key]) for key in BAR_METRICS}
    scores = {detector: per_group_scores(seeds) for detector, seeds in detectors.items()}
    written["distributions"] = figures.plot_score_distributions(
        scores, out_dir / FIGURES["distributions"], "score − fixed threshold"
    )
    written["det"] = figures.plot_det_panels(scores, out_dir / FIGURES["det"])
    matrices = {detector: emotion_system_matrix(analysis) for detector, analysis in analyses.items()}
    if any(matrix[2].size for matrix in matrices.values()):
        written["heatmap"] = figures.plot_heatmaps(
            {d: m for d, m in matrices.items() if m[2].size},
            out_dir / FIGURES["heatmap"],
            "EER (%) per emotion x TTS system\n(bona fide of the emotion against that system's spoofs)",
        )
    return written


def _runs_text(analysis: Mapping) -> str:
    names = [Path(folder).name for folder in analysis["folders"]]
    return f"{len(names)} ({', '.join(names)})"


def _detector_table(analyses: Mapping[str, Mapping]) -> list[str]:
    lines = [
        "| detector | architecture | runs | fixed threshold | calibration (for actDCF, Cllr) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for detector, a in analyses.items():
        threshold = a["threshold"]
        shown = (
            f"{threshold:.4g}" if isinstance(threshold, float) else ", ".join(f"{t:.4g}" for t in threshold)
        )
        lines.append(
            f"| {detector} | {a['architecture']} | {_runs_text(a)} | {shown} ({a['threshold_source']}) | "
            f"{a['calibration_source']} |"
        )
    return lines + [""]


def _findings(analyses: Mapping[str, Mapping]) -> list[str]:
    """One line per significant difference from the reference emotion, or a line saying there is none."""
    lines = []
    for detector, a in analyses.items():
        for emotion, g in a["groups"].get(EMOTION, {}).items():
            versus = g.get("vs_reference")
            for metric, short, what in (
                ("eer_percent", "eer", "EER"),
                (
                    "bonafide_rejection_percent",
                    "bonafide_rejection",
                    "bona fide rejected at the fixed threshold",
                ),
            ):
                if versus and versus[f"significant_{short}"]:
                    lines.append(
                        f"- **{detector}**, {emotion}: {what} {g[metric]:.2f} % vs {a['reference_group']} "
                        f"{g[metric] - versus[f'delta_{metric}']:.2f} % (difference {versus[f'delta_{metric}']:+.2f} "
                        f"points, CI {ci_text(versus[f'delta_{short}_ci'])}, Holm p {versus[f'p_{short}_holm']:.3f})"
                    )
    return lines or ["- No emotion differs significantly from the reference after Holm's correction."]


def _per_emotion_table(analyses: Mapping[str, Mapping], metric: str) -> list[str]:
    detectors = list(analyses)
    emotions = display_order(
        list(dict.fromkeys(e for a in analyses.values() for e in a["groups"].get(EMOTION, {})))
    )
    lines = ["| emotion | " + " | ".join(detectors) + " |", "| --- |" + " --- |" * len(detectors)]
    for emotion in emotions:
        cells = []
        for detector in detectors:
            g = analyses[detector]["groups"].get(EMOTION, {}).get(emotion)
            cells.append("–" if g is None else _cell(g, metric))
        lines.append(f"| {emotion} | " + " | ".join(cells) + " |")
    return lines + [""]


def _cell(group: Mapping, metric: str) -> str:
    interval = group[metric.replace("_percent", "_ci")]
    text = f"{group[metric]:.2f}" + (f" {ci_text(interval)}" if interval else "")
    runs = group.get("across_runs")
    if runs:
        text += f"; {runs[f'{metric}_mean']:.2f} ± {runs[f'{metric}_std']:.2f} over {runs['n_runs']} runs"
    return text


def _cost_table(analyses: Mapping[str, Mapping]) -> list[str]:
    detectors = list(analyses)
    lines = [
        "| emotion | " + " | ".join(f"{d} actDCF | {d} Cllr (bits)" for d in detectors) + " |",
        "| --- |" + " ---: | ---: |" * len(detectors),
    ]
    emotions = display_order(
        list(dict.fromkeys(e for a in analyses.values() for e in a["groups"].get(EMOTION, {})))
    )
    for emotion in emotions:
        cells = []
        for detector in detectors:
            g = analyses[detector]["groups"].get(EMOTION, {}).get(emotion)
            cells += ["–", "–"] if g is None else [f"{g['act_dcf']:.4f}", f"{g['cllr_bits']:.4f}"]
        lines.append(f"| {emotion} | " + " | ".join(cells) + " |")
    return lines + [""]


def _matrix_tables(analyses: Mapping[str, Mapping]) -> list[str]:
    lines = []
    for detector, analysis in analyses.items():
        emotions, systems, matrix = emotion_system_matrix(analysis)
        if not matrix.size:
            continue
        lines += [
            f"{detector}:",
            "",
            "| emotion | " + " | ".join(systems) + " |",
            "| --- |" + " ---: |" * len(systems),
        ]
        for i, emotion in enumerate(emotions):
            cells = ["–" if value != value else f"{value:.2f}" for value in matrix[i]]
            lines.append(f"| {emotion} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _figure(comparison: Mapping, key: str, alt: str) -> list[str]:
    name = comparison["figures"].get(key)
    return [f"![{alt}]({name})", ""] if name else []


def format_compare_markdown(comparison: Mapping) -> str:
    """``report.md``: detectors, significant findings, per-emotion tables and figures, and how to read them."""
    analyses = comparison["detectors"]
    reference = next(iter(analyses.values()))["reference_group"]
    lines = ["# Do the detectors fail on emotional speech?", "", "## Detectors", ""]
    lines += _detector_table(analyses)
    lines += (
        [f"## Significant differences from {reference} (Holm-corrected)", ""] + _findings(analyses) + [""]
    )
    lines += ["## EER per emotion (%), 95 % CI", ""] + _figure(comparison, "eer", "EER per emotion")
    lines += _per_emotion_table(analyses, "eer_percent")
    lines += ["## Bona fide rejected at the fixed threshold (%), 95 % CI", ""]
    lines += _figure(comparison, "rejection", "bona fide rejection per emotion")
    lines += _per_emotion_table(analyses, "bonafide_rejection_percent")
    lines += ["## Spoofs accepted at the fixed threshold (%), 95 % CI", ""]
    lines += _per_emotion_table(analyses, "spoof_acceptance_percent")
    lines += [f"## Differences from {reference}", ""]
    for detector, a in analyses.items():
        groups = a["groups"].get(EMOTION, {})
        if any("vs_reference" in g for g in groups.values()):
            lines += [f"### {detector}", ""] + reference_table(reference, groups, a["settings"]["alpha"])
    lines += ["## Calibration: actDCF and Cllr per emotion", ""] + _cost_table(analyses)
    lines += ["## Score distributions", ""] + _figure(comparison, "distributions", "score distributions")
    lines += ["## DET curves per emotion", ""] + _figure(comparison, "det", "DET curves per emotion")
    lines += ["## EER (%) per emotion x TTS system", ""] + _figure(comparison, "heatmap", "EER heatmap")
    lines += _matrix_tables(analyses)
    lines += ["## How the numbers were made", ""]
    for detector, a in analyses.items():
        lines += [f"{detector}:", ""] + breakdown_notes(a) + [""]
    lines.append('See README, "Reading the emotion analysis", for what each number means.')
    return "\n".join(lines) + "\n"
