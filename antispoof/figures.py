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
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas, without touching pyplot's global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, out_path: str | os.PathLike, dpi: int = 120) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    return out_path


def draw_det_axes(axes, curves: Mapping[str, tuple], colours=OKABE_ITO, legend_size: str = "small") -> None:
    """DET curves ``{label: (bona_fide_scores, spoof_scores)}`` on normal-deviate axes, EER points marked.

    x: false acceptance of spoofs, y: false rejection of bona fide trials (both in %).
    """
    from scipy.special import ndtri

    low, high = DET_TICKS[0], DET_TICKS[-1]
    for (label, (bonafide, spoof)), colour in zip(curves.items(), _cycle(colours, len(curves))):
        frr, far, _ = compute_det_curve(bonafide, spoof)
        eer, index = eer_from_det(frr, far)
        x, y = ndtri(np.clip(far, low / 2, 1 - low / 2)), ndtri(np.clip(frr, low / 2, 1 - low / 2))
        axes.plot(x, y, color=colour, label=f"{label} (EER {100 * eer:.2f} %)")
        axes.plot(x[index], y[index], "o", color=colour)
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
    figure.tight_layout()
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
