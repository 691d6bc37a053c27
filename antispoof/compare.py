"""Compare finished experiment folders on emotional speech: one Markdown report and its figures.

An experiment folder (``main.py`` writes it) holds:

    config.conf              JSON; model_config.architecture names the detector
    dev_scores.txt           ASVspoof 2019 LA dev scores of the final model (optional): the fixed threshold is
                             their EER threshold, and without calibration.json the calibration is fitted on them
    eval_scores.txt          LA eval scores (optional, not used here)
    dses/dses_scores.txt     DSES scores (official format)
    dses/dses_protocol.tsv   DSES metadata: utt_id speaker emotion system key path (tab-separated)
    calibration.json         score -> LLR (optional; :mod:`antispoof.calibration`)

Folders whose names differ only by a trailing ``_seed<N>`` are seeds of one detector: their trials are pooled
and each number is also given as mean ± std over the seeds (:mod:`antispoof.breakdown`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from antispoof.breakdown import DEFAULT_SETTINGS, BreakdownSettings, ScoredRun, breakdown, fixed_threshold
from antispoof.calibration import (
    Calibration,
    CalibrationError,
    apply_calibration,
    fit_calibration,
    load_calibration,
)
from antispoof.emotions import EMOTIONS
from antispoof.fileio import write_text_atomically
from antispoof.grouping import column_masks
from antispoof.metadata import TrialTable, read_metadata
from antispoof.scorefiles import CMScores, EvaluationInputError, ScoreProtocolMismatch, read_score_file

SEED_SUFFIX = re.compile(r"_seed(\d+)$")
GROUP_BY = ("emotion", "system", "emotion:system")
FIGURES = {
    "eer": "eer_by_emotion.png",
    "rejection": "bonafide_rejection_by_emotion.png",
    "distributions": "score_distributions.png",
    "det": "det_by_emotion.png",
    "heatmap": "eer_emotion_x_system.png",
}


@dataclass(frozen=True)
class Experiment:
    """One finished experiment folder, read: its DSES trials and scores, threshold and calibration."""

    path: Path
    architecture: str
    table: TrialTable
    run: ScoredRun
    threshold_source: str
    calibration_source: str

    @property
    def detector(self) -> str:
        return SEED_SUFFIX.sub("", self.path.name)


def _architecture(config_path: Path) -> str:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        return str(config["model_config"]["architecture"])
    except OSError as exc:
        raise EvaluationInputError(f"{config_path}: cannot read config: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(f"{config_path}: config is not JSON ({exc})") from None
    except (KeyError, TypeError):
        raise EvaluationInputError(f"{config_path}: no model_config.architecture") from None


def _calibration(folder: Path, dev: CMScores | None) -> tuple[Calibration | None, str]:
    if (folder / "calibration.json").is_file():
        return load_calibration(folder / "calibration.json"), "calibration.json"
    if dev is None:
        return None, "none (no calibration.json, no dev_scores.txt)"
    try:
        fitted = fit_calibration(*dev.by_class(), fitted_on=str(folder / "dev_scores.txt"))
    except CalibrationError as exc:
        return None, f"none ({exc})"
    return fitted, "fitted here on dev_scores.txt (no calibration.json)"


def read_experiment(folder: str | os.PathLike, fallback_threshold: float | None = None) -> Experiment:
    """Read an experiment folder (see the module docstring); one-line errors name the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationInputError(f"{folder}: experiment folder not found")
    architecture = _architecture(folder / "config.conf")
    table = read_metadata(folder / "dses" / "dses_protocol.tsv")
    score_path = folder / "dses" / "dses_scores.txt"
    scores = table.scores_of(read_score_file(score_path), score_path)
    dev = read_score_file(folder / "dev_scores.txt") if (folder / "dev_scores.txt").is_file() else None
    threshold, threshold_source = fixed_threshold(
        table, scores, dev, "dev_scores.txt (LA19 dev)", fallback_threshold
    )
    calibration, calibration_source = _calibration(folder, dev)
    llrs = None if calibration is None else apply_calibration(calibration, scores)
    run = ScoredRun(scores, threshold, llrs, str(score_path))
    return Experiment(folder, architecture, table, run, threshold_source, calibration_source)


def group_seeds(experiments: Sequence[Experiment]) -> dict[str, list[Experiment]]:
    """Experiments by detector (folder name without ``_seed<N>``), in the order given; each detector's seeds
    are realigned to the trials of its first folder."""
    detectors: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        seeds = detectors.setdefault(experiment.detector, [])
        if any(other.path.name == experiment.path.name for other in seeds):
            raise EvaluationInputError(
                f"{experiment.path}: two experiment folders named {experiment.path.name} (seeds need distinct "
                "_seed<N> suffixes)"
            )
        seeds.append(experiment if not seeds else _aligned(seeds[0], experiment))
    return detectors


def _aligned(first: Experiment, other: Experiment) -> Experiment:
    """``other`` with its scores in the row order of ``first``'s table (the same trials are required)."""
    ids, other_ids = first.table.columns["utt_id"], other.table.columns["utt_id"]
    if np.array_equal(ids, other_ids):
        return replace(other, table=first.table)
    if set(ids.tolist()) != set(other_ids.tolist()):
        raise ScoreProtocolMismatch(
            f"{other.path}: its DSES trials differ from those of {first.path} (seeds of one detector must score "
            "the same trials)"
        )
    order = dict(zip(other_ids.tolist(), range(len(other_ids))))
    index = np.array([order[u] for u in ids.tolist()])
    run = other.run
    llrs = None if run.llrs is None else run.llrs[index]
    return replace(other, table=first.table, run=replace(run, scores=run.scores[index], llrs=llrs))


def display_order(names: Sequence[str]) -> list[str]:
    """Emotions in the project's order (neutral first), anything else after them, sorted."""
    rank = {emotion: i for i, emotion in enumerate(EMOTIONS)}
    return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))


def analyse_detector(
    seeds: Sequence[Experiment], reference_group: str, settings: BreakdownSettings, group_by=GROUP_BY
) -> dict:
    """The breakdown of one detector's seeds (pooled, with mean ± std over seeds), and where its threshold
    and calibration came from."""
    first = seeds[0]
    columns = [spec for spec in group_by if all(c in first.table.columns for c in spec.split(":"))]
    result = breakdown(first.table, [e.run for e in seeds], columns, reference_group, settings)
    result["architecture"] = first.architecture
    result["folders"] = [str(e.path) for e in seeds]
    result["threshold_sources"] = sorted({e.threshold_source for e in seeds})
    result["calibration_sources"] = sorted({e.calibration_source for e in seeds})
    result["threshold_source"] = "; ".join(result["threshold_sources"])
    result["calibration_source"] = "; ".join(result["calibration_sources"])
    return result


def compare_experiments(
    folders: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fallback_threshold: float | None = None,
    reference_group: str = "neutral",
    settings: BreakdownSettings = DEFAULT_SETTINGS,
) -> dict:
    """Read the folders, analyse each detector, write ``report.md``, ``compare.json`` and the figures into
    ``out_dir``; returns what ``compare.json`` holds."""
    from antispoof.compare_report import draw_figures, format_compare_markdown  # matplotlib on demand

    detectors = group_seeds([read_experiment(folder, fallback_threshold) for folder in folders])
    analyses = {name: analyse_detector(seeds, reference_group, settings) for name, seeds in detectors.items()}
    out_dir = Path(out_dir)
    figures = draw_figures(detectors, analyses, out_dir)
    comparison = {"detectors": analyses, "figures": {key: path.name for key, path in figures.items()}}
    write_text_atomically(out_dir / "compare.json", json.dumps(comparison, indent=1) + "\n")
    write_text_atomically(out_dir / "report.md", format_compare_markdown(comparison))
    return comparison


def relative_scores(seeds: Sequence[Experiment]) -> tuple[np.ndarray, np.ndarray]:
    """All seeds' scores minus their own threshold (so 0 is every seed's decision point), and the table row
    of each."""
    n = len(seeds[0].table)
    shifted = np.concatenate([e.run.scores - e.run.threshold for e in seeds])
    return shifted, np.tile(np.arange(n), len(seeds))


def per_group_scores(seeds: Sequence[Experiment], column: str = "emotion") -> dict[str, tuple]:
    """``{group: (bona fide, spoof)}`` relative scores (:func:`relative_scores`) of one detector."""
    table = seeds[0].table
    shifted, rows = relative_scores(seeds)
    is_bonafide = table.is_bonafide[rows]
    masks = column_masks(table, column)
    found = {}
    for name in display_order(list(masks)):
        mask = masks[name][rows]
        bonafide, spoof = shifted[mask & is_bonafide], shifted[mask & ~is_bonafide]
        if bonafide.size and spoof.size:
            found[name] = (bonafide, spoof)
    return found


def emotion_system_matrix(analysis: Mapping) -> tuple[list[str], list[str], np.ndarray]:
    """EER (%) of each emotion x TTS system cell of a breakdown (NaN where there is no cell)."""
    cells = analysis["groups"].get("emotion:system", {})
    pairs = [name.split(":", 1) for name in cells]
    emotions = display_order(list(dict.fromkeys(e for e, _ in pairs)))
    systems = sorted({s for _, s in pairs})
    matrix = np.full((len(emotions), len(systems)), np.nan)
    for (emotion, system), metrics in zip(pairs, cells.values()):
        matrix[emotions.index(emotion), systems.index(system)] = metrics["eer_percent"]
    return emotions, systems, matrix
