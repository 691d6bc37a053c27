"""Figures (matplotlib, Agg, no pyplot state): DET curves per emotion.

Colours are the Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies.
matplotlib and scipy are imported on first use so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from antispoof.grouping import column_masks
from antispoof.metadata import TrialTable
from antispoof.metrics import compute_det_curve, eer_from_det

# Okabe & Ito (2008), "Color Universal Design": black first is left out (it is kept for reference lines)
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000")
PANELS_PER_ROW = 3  # figures with one panel per detector wrap after this many
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas, without touching pyplot's global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")  # room for titles, colour bars, legends
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, out_path: str | os.PathLike, dpi: int = 120) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    return out_path


EER_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def draw_det_axes(axes, curves: Mapping[str, tuple], colours=OKABE_ITO, legend_size: str = "small") -> None:
    """DET curves ``{label: (bona_fide_scores, spoof_scores)}`` on normal-deviate axes, EER points marked.

    x: false acceptance of spoofs, y: false rejection of bona fide trials (both in %).
    """
    from scipy.special import ndtri

    low, high = DET_TICKS[0], DET_TICKS[-1]
    for i, ((label, (bonafide, spoof)), colour) in enumerate(
        zip(curves.items(), _cycle(colours, len(curves)))
    ):
        frr, far, _ = compute_det_curve(bonafide, spoof)
        eer, index = eer_from_det(frr, far)
        x, y = ndtri(np.clip(far, low / 2, 1 - low / 2)), ndtri(np.clip(frr, low / 2, 1 - low / 2))
        # the first curve (e.g. "all systems") on top, thicker, its EER point larger and outlined, and each
        # curve's EER point its own shape: points that coincide stay visible
        first = i == 0
        axes.plot(
            x,
            y,
            color=colour,
            label=f"{label} (EER {100 * eer:.2f} %)",
            linewidth=2.2 if first else 1.4,
            zorder=3 if first else 2,
            marker=EER_MARKERS[i % len(EER_MARKERS)],
            markevery=[index],
            markersize=9 if first else 6,
            markeredgecolor="black" if first else colour,
        )
    ticks = ndtri(np.asarray(DET_TICKS))
    tick_labels = [f"{100 * t:g}" for t in DET_TICKS]
    limits = (ndtri(low), ndtri(high))
    axes.plot(limits, limits, ":", color="grey", linewidth=0.8)
    axes.set_xticks(ticks, tick_labels)
    axes.set_yticks(ticks, tick_labels)
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_xlabel("False acceptance rate of spoofs (%)")
    axes.set_ylabel("False rejection rate of bona fide (%)")
    axes.grid(True, linewidth=0.5, alpha=0.6)
    axes.legend(loc="upper right", fontsize=legend_size)


def _cycle(colours, n: int) -> list[str]:
    return [colours[i % len(colours)] for i in range(n)]


def plot_det_curves(curves: Mapping[str, tuple], out_path: str | os.PathLike, title: str = "") -> Path:
    """Draw DET curves ``{label: (bona_fide_scores, spoof_scores)}`` into a PNG (see :func:`draw_det_axes`)."""
    figure = new_figure(5.5, 5.5)
    axes = figure.add_subplot()
    draw_det_axes(axes, curves)
    if title:
        axes.set_title(title)
    return save_figure(figure, out_path)


def plot_det(
    table: TrialTable, scores: np.ndarray, out_dir: str | os.PathLike, prefix: str = "det"
) -> list[Path]:
    """Write one DET plot per emotion, ``<out_dir>/<prefix>_<emotion>.png``, a curve per TTS system and one
    for all systems together.

    ``table`` has ``emotion``, ``system`` and ``key`` columns; ``scores`` is aligned with its rows. Emotions
    lacking bona fide or spoofs are skipped. Returns the written paths.
    """
    values, is_bonafide = np.asarray(scores, dtype=np.float64), table.is_bonafide
    systems = column_masks(table, "system")
    written = []
    for emotion, mask in column_masks(table, "emotion").items():
        bonafide, spoof_mask = values[mask & is_bonafide], mask & ~is_bonafide
        if bonafide.size == 0 or not spoof_mask.any():
            continue
        curves = {"all systems": (bonafide, values[spoof_mask])}
        for system, system_mask in systems.items():
            if (spoof_mask & system_mask).any():
                curves[system] = (bonafide, values[spoof_mask & system_mask])
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", emotion)
        written.append(
            plot_det_curves(curves, Path(out_dir) / f"{prefix}_{safe}.png", title=f"DET: {emotion}")
        )
    return written


# --------------------------------------------------------------------------------------------------
# comparison figures: detectors side by side, per emotion
# --------------------------------------------------------------------------------------------------
def plot_grouped_bars(
    values: Mapping[str, Mapping[str, Mapping]],
    out_path: str | os.PathLike,
    title: str,
    ylabel: str,
    group_label: str = "emotion",
    significant_label: str = "differs from neutral (Holm)",
) -> Path:
    """Bars per group (x) and detector (colour): ``values[detector][group]`` holds ``value``, ``ci`` ([low,
    high] or None), ``runs`` (per-run values, drawn as dots when there are several) and ``significant``
    (marked with an asterisk above the bar)."""
    detectors = list(values)
    groups = list(dict.fromkeys(g for per_group in values.values() for g in per_group))
    figure = new_figure(min(14.0, max(7.0, 0.5 * len(groups) * len(detectors) + 3.0)), 5.0)
    axes = figure.add_subplot()
    width = 0.8 / len(detectors)
    for d, (detector, colour) in enumerate(zip(detectors, _cycle(OKABE_ITO, len(detectors)))):
        xs = np.arange(len(groups)) - 0.4 + width * (d + 0.5)
        _draw_bars(axes, xs, [values[detector].get(g) for g in groups], width, colour, detector)
    axes.set_xticks(np.arange(len(groups)), groups)
    axes.set_xlabel(group_label)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.set_ylim(0, axes.get_ylim()[1] * 1.08)  # headroom for the significance marks
    axes.grid(True, axis="y", linewidth=0.5, alpha=0.6)
    axes.set_axisbelow(True)
    axes.legend(
        *_bar_legend(axes, values, significant_label),
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return save_figure(figure, out_path)


def _bar_legend(
    axes, values: Mapping[str, Mapping[str, Mapping]], significant_label: str
) -> tuple[list, list]:
    """The detectors, then a key to the marks that the chart shows (CI whiskers, seed dots, asterisks)."""
    handles, labels = axes.get_legend_handles_labels()
    cells = [cell for per_group in values.values() for cell in per_group.values() if cell is not None]
    marks = (
        (
            any(c.get("ci") for c in cells),
            "95 % CI",
            lambda: axes.errorbar([], [], yerr=[], color="black", capsize=3),
        ),
        (
            any(len(c.get("runs") or []) > 1 for c in cells),
            "one run (seed)",
            lambda: axes.plot([], [], "o", color="white", markeredgecolor="black", markersize=3.5)[0],
        ),
        (
            any(c.get("significant") for c in cells),
            significant_label,
            lambda: axes.plot([], [], "*", color="black")[0],
        ),
    )
    for shown, label, handle in marks:
        if shown:
            handles.append(handle())
            labels.append(label)
    return handles, labels


def _draw_bars(axes, xs, cells, width: float, colour: str, label: str) -> None:
    present = [(x, cell) for x, cell in zip(xs, cells) if cell is not None]
    heights = [cell["value"] for _, cell in present]
    bar_xs = [x for x, _ in present]
    axes.bar(bar_xs, heights, width * 0.92, color=colour, label=label, edgecolor="black", linewidth=0.4)
    for x, cell in present:
        top = cell["value"]
        if cell.get("ci") is not None:
            low, high = cell["ci"]
            axes.errorbar(x, top, yerr=[[top - low], [high - top]], color="black", capsize=3, linewidth=1)
            top = high
        runs = cell.get("runs") or []
        if len(runs) > 1:
            axes.plot([x] * len(runs), runs, "o", color="white", markeredgecolor="black", markersize=3.5)
            top = max(top, *runs)
        if cell.get("significant"):
            axes.annotate(
                "*",
                (x, top),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=13,
                fontweight="bold",
            )


def plot_score_distributions(
    distributions: Mapping[str, Mapping[str, tuple]], out_path: str | os.PathLike, xlabel: str
) -> Path:
    """Histograms of bona fide and spoof scores, one panel per detector (row) and group (column);
    ``distributions[detector][group] = (bona_fide_scores, spoof_scores)``, the threshold at x = 0."""
    detectors = list(distributions)
    groups = list(dict.fromkeys(g for per_group in distributions.values() for g in per_group))
    figure = new_figure(2.6 * len(groups) + 0.6, 2.4 * len(detectors) + 1.0)
    grid = figure.subplots(len(detectors), len(groups), squeeze=False, sharex="row")
    colours = {"bona fide": OKABE_ITO[3], "spoof": OKABE_ITO[4]}
    for row, detector in enumerate(detectors):
        for col, group in enumerate(groups):
            axes = grid[row][col]
            if group not in distributions[detector]:
                axes.set_axis_off()
                continue
            bonafide, spoof = distributions[detector][group]
            edges = np.histogram_bin_edges(np.concatenate((bonafide, spoof)), bins=40)
            for name, values in (("bona fide", bonafide), ("spoof", spoof)):
                axes.hist(values, bins=edges, density=True, alpha=0.55, color=colours[name], label=name)
            axes.axvline(0.0, color="black", linestyle="--", linewidth=1)
            axes.set_yticks([])
            axes.set_title(f"{detector}: {group}" if len(detectors) > 1 else group, fontsize="medium")
            if row == len(detectors) - 1:
                axes.set_xlabel(xlabel, fontsize="small")
    grid[0][0].legend(fontsize="small", loc="upper left")
    figure.suptitle("Score distributions per emotion (dashed line: the fixed threshold)")
    return save_figure(figure, out_path)


def _panels(figure, n: int, per_row: int = PANELS_PER_ROW) -> list:
    """``n`` axes in rows of at most ``per_row``; the unused cells of the last row are switched off."""
    n_rows, n_cols = -(-n // per_row), min(n, per_row)
    grid = figure.subplots(n_rows, n_cols, squeeze=False).ravel().tolist()
    for axes in grid[n:]:
        axes.set_axis_off()
    return grid[:n]


def _panel_size(n: int, width: float, height: float, per_row: int = PANELS_PER_ROW) -> tuple[float, float]:
    return width * min(n, per_row), height * -(-n // per_row)


def plot_det_panels(curves: Mapping[str, Mapping[str, tuple]], out_path: str | os.PathLike) -> Path:
    """One DET panel per detector with a curve per group: ``curves[detector][group] = (bona fide, spoof)``."""
    detectors = list(curves)
    figure = new_figure(*_panel_size(len(detectors), 5.2, 5.4))
    for axes, detector in zip(_panels(figure, len(detectors)), detectors):
        draw_det_axes(axes, curves[detector], legend_size="x-small")
        axes.set_title(f"DET per emotion: {detector}")
    return save_figure(figure, out_path)


def plot_heatmaps(
    matrices: Mapping[str, tuple[list[str], list[str], np.ndarray]], out_path: str | os.PathLike, title: str
) -> Path:
    """One annotated heatmap per detector: ``matrices[detector] = (row names, column names, values)``
    (NaN: no trials). One colour scale (cividis, readable in grey and with colour-vision deficiencies)."""
    detectors = list(matrices)
    finite = np.concatenate([m[2][np.isfinite(m[2])] for m in matrices.values()] + [np.zeros(1)])
    vmax = max(float(finite.max()), 1e-9)
    n_cols = max(len(m[1]) for m in matrices.values())
    n_rows = max(len(m[0]) for m in matrices.values())
    width, height = _panel_size(len(detectors), 1.1 * n_cols + 2.0, 0.55 * n_rows + 1.6)
    figure = new_figure(max(width + 1.0, 7.0), height + 0.8)
    grid = _panels(figure, len(detectors))
    image = None
    for axes, detector in zip(grid, detectors):
        rows, cols, values = matrices[detector]
        image = axes.imshow(np.ma.masked_invalid(values), cmap="cividis", vmin=0, vmax=vmax, aspect="auto")
        axes.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        axes.set_yticks(range(len(rows)), rows)
        axes.set_title(detector)
        for (i, j), value in np.ndenumerate(values):
            text = "–" if not np.isfinite(value) else f"{value:.1f}"
            light = np.isfinite(value) and value < 0.55 * vmax
            axes.text(
                j, i, text, ha="center", va="center", color="white" if light else "black", fontsize="small"
            )
    figure.colorbar(image, ax=list(grid), label="EER (%)", shrink=0.9)
    figure.suptitle(title)
    return save_figure(figure, out_path)
