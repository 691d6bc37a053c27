"""Breakdown of scores by metadata columns: does a detector fail on some groups (emotions, TTS systems, ...)?

For every group of every ``group_by`` column (:mod:`antispoof.grouping`):

* the group's own EER (its threshold re-optimised inside the group);
* at one fixed operating point for all groups (the threshold a deployed detector uses, e.g. the EER threshold
  of LA19 dev): the bona fide rejection rate (real speech called fake) and the spoof acceptance rate;
* minDCF, and actDCF and Cllr on calibrated LLRs when a calibration is given (ASVspoof 5 costs);
* 95 % speaker-bootstrap CIs of the EER and both rates: speakers are resampled with all their trials, and
  every group uses the same resamples, so differences between groups are paired;
* against a reference group of the same column (``neutral`` for emotions): the difference in EER and in bona
  fide rejection with its paired-bootstrap CI, a two-sided p-value from a paired randomisation test that swaps
  speakers' groups (:func:`_randomisation_p_values`), and Holm's correction over the column's groups;
* with several runs over the same trials (seeds): every number on all runs' trials pooled (each run decides at
  its own threshold, and its scores are shifted so that the thresholds coincide; a speaker's trials of all
  runs are resampled together), and each number's mean and standard deviation over the runs.

The result is JSON-ready; the field names are a contract (README "Reading the emotion analysis").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from antispoof.grouping import class_counts, group_masks
from antispoof.metadata import TrialTable
from antispoof.metrics import (
    ASVSPOOF5_COSTS,
    DEFAULT_BOOTSTRAP_RESAMPLES,
    DEFAULT_BOOTSTRAP_SEED,
    DEFAULT_PERMUTATIONS,
    EXACT_SWAP_SPEAKERS,
    DCFCosts,
    bootstrap_eer_replicates,
    bootstrap_rate_replicates,
    cluster_draws,
    compute_act_dcf,
    compute_cllr,
    compute_eer,
    compute_min_dcf,
    holm_adjust,
    percentile_interval,
    randomisation_p_value,
    speaker_swaps,
)
from antispoof.scorefiles import CMScores

RATE_METRICS = ("eer_percent", "bonafide_rejection_percent", "spoof_acceptance_percent")
RUN_METRICS = RATE_METRICS + ("min_dcf", "act_dcf", "cllr_bits")
# (metric, name in the vs_reference fields): the differences tested against the reference group
TESTED = (("eer_percent", "eer"), ("bonafide_rejection_percent", "bonafide_rejection"))


@dataclass(frozen=True)
class ScoredRun:
    """One run's scores over a table's trials, with the operating point it decides at."""

    scores: np.ndarray  # aligned with the table's rows
    threshold: float  # score >= threshold: bona fide
    llrs: np.ndarray | None = None  # calibrated scores (natural-log LLRs), for actDCF and Cllr
    name: str = "scores"


@dataclass(frozen=True)
class BreakdownSettings:
    n_bootstrap: int = DEFAULT_BOOTSTRAP_RESAMPLES  # 0: no CIs, no p-values
    n_permutations: int = DEFAULT_PERMUTATIONS  # random swap patterns, with more than 12 speakers
    confidence: float = 0.95
    seed: int = DEFAULT_BOOTSTRAP_SEED
    alpha: float = 0.05  # significance level after Holm's correction
    costs: DCFCosts = ASVSPOOF5_COSTS


DEFAULT_SETTINGS = BreakdownSettings()


@dataclass(frozen=True)
class _Trials:
    """All runs' trials stacked: run r's copy of table row i is entry r * n_rows + i."""

    rows: np.ndarray  # table row of each entry
    run: np.ndarray  # run index of each entry
    scores: np.ndarray
    llrs: np.ndarray  # calibrated scores, or the scores themselves
    is_bonafide: np.ndarray
    clusters: np.ndarray  # speaker index: the bootstrap's unit
    row_speakers: np.ndarray  # speaker index of each table row: the randomisation test's unit
    rejected: np.ndarray  # score < its run's threshold
    n_clusters: int
    resampling: str  # what a cluster is: "speakers", or "trials" when there is only one speaker
    n_runs: int


def fixed_threshold(
    table: TrialTable,
    scores: np.ndarray,
    dev: CMScores | None = None,
    dev_name: str = "the development scores",
    given: float | None = None,
) -> tuple[float, str]:
    """The operating point every group is judged at, and where it came from: the EER threshold of development
    scores (what a deployed detector would use), else a given threshold, else the pooled EER threshold of the
    scores themselves (optimistic: chosen on the very trials it is applied to)."""
    if dev is not None:
        return compute_eer(*dev.by_class())[1], f"EER threshold of {dev_name}"
    if given is not None:
        return float(given), "given on the command line (--threshold)"
    is_bonafide = table.is_bonafide
    threshold = compute_eer(scores[is_bonafide], scores[~is_bonafide])[1]
    return threshold, "no development scores: the pooled EER threshold of the scores themselves (optimistic)"


def _stack(table: TrialTable, runs: Sequence[ScoredRun]) -> _Trials:
    n = len(table)
    for run in runs:
        if np.shape(run.scores) != (n,) or (run.llrs is not None and np.shape(run.llrs) != (n,)):
            raise ValueError(
                f"{run.name}: {np.size(run.scores)} scores are not aligned with the {n} trials of {table.source}"
            )
    _, speakers = np.unique(table.column("speaker"), return_inverse=True)
    clusters, resampling = speakers.reshape(-1), "speakers"
    if clusters.max() == 0:  # one speaker: resampling it changes nothing, so resample trials instead
        clusters, resampling = np.arange(n), "trials (only one speaker)"
    n_runs = len(runs)
    raw = np.concatenate([np.asarray(run.scores, dtype=np.float64) for run in runs])
    thresholds = np.repeat([run.threshold for run in runs], n)
    llrs = [run.scores if run.llrs is None else run.llrs for run in runs]
    return _Trials(
        rows=np.tile(np.arange(n), n_runs),
        run=np.repeat(np.arange(n_runs), n),
        scores=_aligned_scores(raw, thresholds),
        llrs=np.concatenate(llrs).astype(np.float64),
        is_bonafide=np.tile(table.is_bonafide, n_runs),
        clusters=np.tile(clusters, n_runs),
        row_speakers=speakers.reshape(-1),
        rejected=raw < thresholds,
        n_clusters=int(clusters.max()) + 1,
        resampling=resampling,
        n_runs=n_runs,
    )


def _aligned_scores(raw: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Runs deciding at different thresholds are shifted onto the first run's threshold, so that the pooled
    EER and DET are those of "each run at its own operating point" rather than of arbitrary score offsets."""
    if np.all(thresholds == thresholds[0]):
        return raw
    return raw - thresholds + thresholds[0]


def _point_metrics(trials: _Trials, mask: np.ndarray, costs: DCFCosts) -> dict:
    bonafide, spoof = mask & trials.is_bonafide, mask & ~trials.is_bonafide
    eer, threshold = compute_eer(trials.scores[bonafide], trials.scores[spoof])
    n_bonafide, n_spoof = np.count_nonzero(bonafide), np.count_nonzero(spoof)
    return {
        "eer_percent": 100 * eer,
        "eer_threshold": threshold,
        "bonafide_rejection_percent": float(100 * np.count_nonzero(trials.rejected & bonafide) / n_bonafide),
        "spoof_acceptance_percent": float(100 * np.count_nonzero(~trials.rejected & spoof) / n_spoof),
        "min_dcf": compute_min_dcf(trials.scores[bonafide], trials.scores[spoof], costs)[0],
        "act_dcf": compute_act_dcf(trials.llrs[bonafide], trials.llrs[spoof], costs)[0],
        "cllr_bits": compute_cllr(trials.llrs[bonafide], trials.llrs[spoof]),
    }


def _replicates(
    trials: _Trials, mask: np.ndarray, draws: np.ndarray, costs: DCFCosts, clusters: np.ndarray | None = None
) -> dict:
    """Each rate metric (%) in every row of ``draws`` (NaN where a row lacks what it needs): ``draws[b, c]``
    copies of the entries of cluster c (``clusters``, the speakers by default) in row b, a bootstrap resample
    or, with 0/1 counts, a relabelled group."""
    clusters = trials.clusters if clusters is None else clusters
    bonafide, spoof = mask & trials.is_bonafide, mask & ~trials.is_bonafide
    eers, _ = bootstrap_eer_replicates(
        trials.scores[mask], trials.is_bonafide[mask], clusters[mask], draws, costs
    )
    rejected = bootstrap_rate_replicates(trials.rejected[bonafide], clusters[bonafide], draws)
    accepted = bootstrap_rate_replicates(~trials.rejected[spoof], clusters[spoof], draws)
    return {
        "eer_percent": 100 * eers,
        "bonafide_rejection_percent": 100 * rejected,
        "spoof_acceptance_percent": 100 * accepted,
    }


def _interval(replicates: np.ndarray, confidence: float) -> list[float] | None:
    """The percentile interval, or None when no resample could compute the number (JSON has no NaN)."""
    return percentile_interval(replicates, confidence) if np.isfinite(replicates).any() else None


def _randomisation_p_values(trials: _Trials, group: np.ndarray, reference: np.ndarray, settings) -> dict:
    """Two-sided p-value of each tested difference (group - reference) from a paired randomisation test.

    Null hypothesis: within each speaker the group label does not matter, i.e. a speaker's trials of the group
    and of the reference are exchangeable as wholes. A relabelling swaps, for some speakers, which of their
    trials count as the group and which as the reference (each speaker keeps its counts per class, and
    trials that belong to both groups stay in both); the difference is recomputed in every relabelling, and
    p = the share at least as far from their mean as the observed one (:func:`randomisation_p_value`). With K
    speakers holding trials of both groups, all 2^K swap patterns are listed (an exact test, the smallest p
    2^(1 - K) when the two groups mirror each other: no claim about speakers in general can be stronger with K
    of them), or random ones beyond 12 speakers.
    A speaker lacking trials of one of the groups cannot be swapped: its trials stay where they are (they
    count in the difference, not in its randomness); with no swappable speaker there is no test (None).
    Swapping speakers rather than single trials keeps the level when the effect of the group varies from
    speaker to speaker (a speaker-by-group interaction), which the speaker bootstrap CIs also allow for.
    """
    cells = 3 * trials.row_speakers + np.where(reference, np.where(group, 2, 1), 0)  # (speaker, side)
    n_speakers = int(trials.row_speakers.max()) + 1
    present = np.zeros(3 * n_speakers, dtype=bool)
    present[cells[group | reference]] = True
    swappable = present[0::3] & present[1::3]  # trials only in the group, and trials only in the reference
    if not swappable.any():
        return {short: None for _, short in TESTED}
    swapped = speaker_swaps(swappable, settings.n_permutations, settings.seed)
    in_group, in_reference = np.zeros((2, swapped.shape[0], 3 * n_speakers), dtype=np.int64)
    in_group[:, 0::3], in_group[:, 1::3], in_group[:, 2::3] = ~swapped, swapped, True
    in_reference[:, 0::3], in_reference[:, 1::3], in_reference[:, 2::3] = swapped, ~swapped, True
    entries, entry_cells = (group | reference)[trials.rows], cells[trials.rows]
    relabelled_group = _replicates(trials, entries, in_group, settings.costs, entry_cells)
    relabelled_reference = _replicates(trials, entries, in_reference, settings.costs, entry_cells)
    p_values = {}
    for metric, short in TESTED:
        p = randomisation_p_value(relabelled_group[metric] - relabelled_reference[metric])
        p_values[short] = None if np.isnan(p) else p
    return p_values


def _across_runs(trials: _Trials, mask: np.ndarray, costs: DCFCosts) -> dict:
    """Mean and sample standard deviation over the runs of each number (each run on its own trials)."""
    per_run = [_point_metrics(trials, mask & (trials.run == r), costs) for r in range(trials.n_runs)]
    summary: dict = {"n_runs": trials.n_runs}
    for metric in RUN_METRICS:
        values = np.array([run[metric] for run in per_run])
        summary[f"{metric}_mean"] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std(ddof=1))
        summary[f"{metric}_runs"] = values.tolist()
    return summary


def _group(trials: _Trials, table: TrialTable, mask: np.ndarray, draws, settings: BreakdownSettings):
    """A group's metrics (JSON-ready) and its bootstrap replicates (None without bootstrap)."""
    entries = mask[trials.rows]
    n_bonafide, n_spoof = class_counts(table.is_bonafide, mask)
    metrics = {
        "n_bonafide": n_bonafide,
        "n_spoof": n_spoof,
        "n_speakers": int(np.unique(table.column("speaker")[mask]).size),
        **_point_metrics(trials, entries, settings.costs),
    }
    replicates = None if draws is None else _replicates(trials, entries, draws, settings.costs)
    for metric in RATE_METRICS:
        interval = None if replicates is None else _interval(replicates[metric], settings.confidence)
        metrics[metric.replace("_percent", "_ci")] = interval
    if trials.n_runs > 1:
        metrics["across_runs"] = _across_runs(trials, entries, settings.costs)
    return metrics, replicates


def _versus_reference(
    trials: _Trials, groups: dict, replicates: dict, masks: dict, reference: str, settings: BreakdownSettings
) -> None:
    """Add ``vs_reference`` to every other group: differences, paired-bootstrap CIs, randomisation p-values,
    Holm over the column."""
    others = [name for name in groups if name != reference]
    for name in others:
        versus = {}
        tested = replicates[name] is not None and settings.n_permutations > 0
        p_values = _randomisation_p_values(trials, masks[name], masks[reference], settings) if tested else {}
        for metric, short in TESTED:
            versus[f"delta_{metric}"] = groups[name][metric] - groups[reference][metric]
            versus[f"delta_{short}_ci"], versus[f"p_{short}"] = None, p_values.get(short)
            if replicates[name] is not None:
                deltas = replicates[name][metric] - replicates[reference][metric]
                versus[f"delta_{short}_ci"] = _interval(deltas, settings.confidence)
        groups[name]["vs_reference"] = versus
    for _, short in TESTED:
        raw = [groups[name]["vs_reference"][f"p_{short}"] for name in others]
        adjusted = holm_adjust([np.nan if p is None else p for p in raw])
        for name, p_raw, p_holm in zip(others, raw, adjusted):
            versus = groups[name]["vs_reference"]
            versus[f"p_{short}_holm"] = None if p_raw is None else p_holm
            versus[f"significant_{short}"] = None if p_raw is None else bool(p_holm < settings.alpha)


def breakdown(
    table: TrialTable,
    runs: Sequence[ScoredRun],
    group_by: Sequence[str],
    reference_group: str | None = "neutral",
    settings: BreakdownSettings = DEFAULT_SETTINGS,
) -> dict:
    """Per-group metrics of ``runs`` over ``table``'s trials by each column (or ``a:b`` cross) in ``group_by``.

    Returns ``threshold`` (one number, or one per run when they differ), ``pooled`` (all trials), and
    ``groups[column][value]`` with ``n_bonafide``, ``n_spoof``, ``n_speakers``, ``eer_percent``, ``eer_ci``,
    ``bonafide_rejection_percent``, ``bonafide_rejection_ci``, ``spoof_acceptance_percent``,
    ``spoof_acceptance_ci``, ``min_dcf``, ``act_dcf``, ``cllr_bits``, ``vs_reference`` (columns holding
    ``reference_group``) and ``across_runs`` (several runs). Groups lacking a class are listed in ``skipped``.
    """
    if not runs:
        raise ValueError("breakdown: no score sets")
    trials = _stack(table, runs)
    draws = None
    if settings.n_bootstrap:
        draws = cluster_draws(trials.n_clusters, settings.n_bootstrap, settings.seed)
    thresholds = sorted({float(run.threshold) for run in runs})
    result = {
        "threshold": thresholds[0] if len(thresholds) == 1 else [float(run.threshold) for run in runs],
        "score_files": [run.name for run in runs],
        "n_runs": len(runs),
        "calibrated": all(run.llrs is not None for run in runs),
        "reference_group": reference_group,
        "group_by": list(group_by),
        "settings": _settings_json(settings, trials),
        "pooled": _group(trials, table, np.ones(len(table), dtype=bool), draws, settings)[0],
        "groups": {},
        "skipped": [],
    }
    for spec in group_by:
        result["groups"][spec] = _column(
            trials, table, spec, draws, settings, reference_group, result["skipped"]
        )
    return result


def _column(trials, table, spec: str, draws, settings, reference_group, skipped: list) -> dict:
    groups, replicates, masks = {}, {}, {}
    for name, mask in group_masks(table, spec).items():
        n_bonafide, n_spoof = class_counts(table.is_bonafide, mask)
        if n_bonafide == 0 or n_spoof == 0:
            skipped.append(f"{spec} {name} ({n_bonafide} bona fide, {n_spoof} spoof)")
            continue
        groups[name], replicates[name] = _group(trials, table, mask, draws, settings)
        masks[name] = mask
    if reference_group in groups:
        _versus_reference(trials, groups, replicates, masks, reference_group, settings)
    return groups


def _settings_json(settings: BreakdownSettings, trials: _Trials) -> dict:
    return {
        "n_bootstrap": settings.n_bootstrap,
        "n_permutations": settings.n_permutations,
        "confidence": settings.confidence,
        "seed": settings.seed,
        "alpha": settings.alpha,
        "resampling": trials.resampling,
        "n_clusters": trials.n_clusters,
        "p_value": "two-sided, paired randomisation test swapping speakers' two groups (every pattern up to "
        f"{EXACT_SWAP_SPEAKERS} speakers, else n_permutations random ones)",
        "correction": "Holm, over the groups of a column, per metric",
        **settings.costs._asdict(),
    }
