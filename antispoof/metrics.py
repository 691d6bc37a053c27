"""Pure array metrics of a countermeasure (CM): EER, DET, ASVspoof 2019 t-DCF, ASVspoof 5 DCF and Cllr, error
rates at a fixed threshold, the speaker bootstrap (confidence intervals of paired differences), the paired
speaker-swap randomisation test of a difference between two groups, and Holm's correction.

Nothing here reads a file. Scores follow the project's convention: higher = more bona fide; a trial is accepted
as bona fide when its score is >= the threshold.

* EER, the DET curve and the min t-DCF re-implement the official ASVspoof 2019 evaluation code (as shipped in
  clovaai/aasist ``evaluation.py``) with the same operating points and tie handling, so results agree with it to
  floating-point precision.
* The ASVspoof 2021 revised t-DCF follows the official 2021 eval-package (asvspoof-challenge/2021).
* minDCF, actDCF and Cllr follow the ASVspoof 5 evaluation package (``calculate_modules.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

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


class DCFCosts(NamedTuple):
    """A CM-only cost model: the prior of a spoof, the cost of rejecting a bona fide trial (a miss) and the
    cost of accepting a spoof (a false alarm)."""

    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0

    @property
    def miss_weight(self) -> float:
        return self.c_miss * (1 - self.p_spoof)

    @property
    def fa_weight(self) -> float:
        return self.c_fa * self.p_spoof


ASVSPOOF5_COSTS = DCFCosts()  # ASVspoof 5 track 1 (evaluation plan and package)

DEFAULT_BOOTSTRAP_RESAMPLES = 1000
DEFAULT_BOOTSTRAP_SEED = 0
DEFAULT_PERMUTATIONS = 1000  # random swap patterns when there are too many speakers to list every pattern
EXACT_SWAP_SPEAKERS = 12  # up to 2^12 swap patterns are all listed: the randomisation test is then exact


def as_scores(values, what: str) -> np.ndarray:
    """A 1-D float64 copy of ``values``; refuses an empty or non-finite array (``what`` names it)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{what}: need at least one score")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: scores contain NaN or inf")
    return array


# --------------------------------------------------------------------------------------------------
# EER and DET (official ASVspoof 2019 operating points)
# --------------------------------------------------------------------------------------------------
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
    target = as_scores(target_scores, "target (bona fide) scores")
    nontarget = as_scores(nontarget_scores, "nontarget (spoof) scores")
    sorted_scores, sorted_is_target = _official_order(target, nontarget)
    frr, far = _det_from_sorted_labels(sorted_is_target)
    thresholds = np.concatenate(([sorted_scores[0] - 0.001], sorted_scores))
    return frr, far, thresholds


def eer_from_det(frr: np.ndarray, far: np.ndarray) -> tuple[float, int]:
    """The EER of a DET curve and the index of its operating point (the official ``argmin |frr - far|``)."""
    index = int(np.argmin(np.abs(frr - far)))
    return float((frr[index] + far[index]) / 2), index


def compute_eer(target_scores, nontarget_scores) -> tuple[float, float]:
    """Equal error rate (a fraction, not %) and its threshold, exactly as the official ``compute_eer``."""
    frr, far, thresholds = compute_det_curve(target_scores, nontarget_scores)
    eer, index = eer_from_det(frr, far)
    return eer, float(thresholds[index])


def rates_at_threshold(bonafide_scores, spoof_scores, threshold: float) -> tuple[float, float]:
    """``(bona fide rejection rate, spoof acceptance rate)`` of the decision ``score >= threshold`` = bona fide.

    The first is the miss rate (real speech called fake), the second the false-alarm rate (fakes let through);
    both are fractions. The same rule as the ASV operating point of the t-DCF and the ASVspoof 5 actDCF.
    """
    bonafide = as_scores(bonafide_scores, "bona fide scores")
    spoof = as_scores(spoof_scores, "spoof scores")
    return np.count_nonzero(bonafide < threshold) / bonafide.size, np.count_nonzero(
        spoof >= threshold
    ) / spoof.size


# --------------------------------------------------------------------------------------------------
# ASVspoof 2019 min t-DCF
# --------------------------------------------------------------------------------------------------
class ASVScores(NamedTuple):
    """The organisers' ASV scores split by key."""

    target: np.ndarray
    nontarget: np.ndarray
    spoof: np.ndarray


def asv_error_rates(asv: ASVScores) -> dict:
    """ASV operating point of the t-DCF: the ASV EER threshold, and the error rates there.

    ``pfa``: nontargets accepted (score >= threshold); ``pmiss``: targets rejected; ``pmiss_spoof``: spoofs
    rejected.
    """
    eer, threshold = compute_eer(asv.target, asv.nontarget)
    pmiss, pfa = rates_at_threshold(asv.target, asv.nontarget, threshold)
    return {
        "eer": eer,
        "threshold": threshold,
        "pfa": pfa,
        "pmiss": pmiss,
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
    bonafide = as_scores(bonafide_cm, "bona fide CM scores")
    spoof = as_scores(spoof_cm, "spoof CM scores")
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
# ASVspoof 2021 revised min t-DCF (eval-package of asvspoof-challenge/2021: eval_wrapper.py, config.py)
# --------------------------------------------------------------------------------------------------
ASVSPOOF2021_TDCF_COST_MODEL = MappingProxyType(
    {
        "Pspoof": 0.05,
        "Ptar": (1 - 0.05) * 0.99,
        "Pnon": (1 - 0.05) * 0.01,
        "Cmiss": 1.0,  # tandem system falsely rejects a target
        "Cfa": 10.0,  # tandem system falsely accepts a nontarget
        "Cfa_spoof": 10.0,  # tandem system falsely accepts a spoof
    }
)


class TDCF2021Coefficients(NamedTuple):
    """C0, C1, C2 of the revised t-DCF: t-DCF(s) = C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s) (NaN: not computable)."""

    c0: float
    c1: float
    c2: float


def tdcf2021_coefficients(
    asv: ASVScores, cost_model: Mapping[str, float] = ASVSPOOF2021_TDCF_COST_MODEL
) -> TDCF2021Coefficients:
    """The ASV-dependent constants of the 2021 t-DCF, with the ASV fixed at its EER threshold (the official
    ``get_tDCF_C012_from_asv_scores``). A condition lacking targets, nontargets or spoofs gives NaNs, as there."""
    if not (len(asv.target) and len(asv.nontarget) and len(asv.spoof)):
        return TDCF2021Coefficients(math.nan, math.nan, math.nan)
    priors = (cost_model["Ptar"], cost_model["Pnon"], cost_model["Pspoof"])
    if min(priors) < 0 or abs(sum(priors) - 1) > 1e-10:
        raise ValueError(f"t-DCF priors must be non-negative and sum to 1, got Ptar, Pnon, Pspoof = {priors}")
    rates = asv_error_rates(asv)
    pfa_spoof = np.count_nonzero(np.asarray(asv.spoof) >= rates["threshold"]) / len(asv.spoof)
    asv_cost = (
        cost_model["Ptar"] * cost_model["Cmiss"] * rates["pmiss"]
        + cost_model["Pnon"] * cost_model["Cfa"] * rates["pfa"]
    )
    return TDCF2021Coefficients(
        asv_cost,
        cost_model["Ptar"] * cost_model["Cmiss"] - asv_cost,
        cost_model["Pspoof"] * cost_model["Cfa_spoof"] * pfa_spoof,
    )


def compute_min_tdcf2021(bonafide_cm, spoof_cm, coefficients: TDCF2021Coefficients) -> float:
    """Minimum normalised revised t-DCF (ASVspoof 2021): min over CM thresholds of
    (C0 + C1 Pmiss_cm + C2 Pfa_cm) / (C0 + min(C1, C2)); NaN when the coefficients are NaN."""
    bonafide = as_scores(bonafide_cm, "bona fide CM scores")
    spoof = as_scores(spoof_cm, "spoof CM scores")
    if np.unique(np.concatenate((bonafide, spoof))).size < 3:
        raise ValueError("t-DCF needs soft CM scores, not binary decisions (fewer than 3 distinct values)")
    c0, c1, c2 = coefficients
    if any(math.isnan(c) for c in coefficients):
        return math.nan
    pmiss_cm, pfa_cm, _ = compute_det_curve(bonafide, spoof)
    curve = (c0 + c1 * pmiss_cm + c2 * pfa_cm) / (c0 + min(c1, c2))
    return float(curve.min())


# --------------------------------------------------------------------------------------------------
# CM-only metrics (ASVspoof 5): minDCF, actDCF, Cllr
# --------------------------------------------------------------------------------------------------
def normalised_dcf(rate_miss, rate_fa, costs: DCFCosts = ASVSPOOF5_COSTS):
    """DCF = Cmiss (1 - Pspoof) Pmiss + Cfa Pspoof Pfa, divided by min(Cmiss (1 - Pspoof), Cfa Pspoof).

    1 is the cost of the better of the two trivial CMs (accept all, reject all). Works on arrays of rates.
    """
    miss_weight, fa_weight = costs.miss_weight, costs.fa_weight
    return (miss_weight * rate_miss + fa_weight * rate_fa) / min(miss_weight, fa_weight)


def bayes_threshold(costs: DCFCosts = ASVSPOOF5_COSTS) -> float:
    """The Bayes decision threshold on natural-log LLRs of a cost model: -log(beta), beta = Cmiss (1 -
    Pspoof) / (Cfa Pspoof); -log(1.9) = -0.642 with the ASVspoof 5 costs. LLR >= threshold: bona fide."""
    return -math.log(costs.miss_weight / costs.fa_weight)


def compute_min_dcf(bonafide_scores, spoof_scores, costs: DCFCosts = ASVSPOOF5_COSTS) -> tuple[float, float]:
    """Normalised minimum DCF over the DET operating points and its threshold (ASVspoof 5 ``compute_mindcf``).

    A bona fide trial is a miss when rejected, a spoof a false alarm when accepted (:func:`normalised_dcf`).
    """
    frr, far, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    curve = normalised_dcf(frr, far, costs)
    index = int(np.argmin(curve))
    return float(curve[index]), float(thresholds[index])


def compute_act_dcf(bonafide_scores, spoof_scores, costs: DCFCosts = ASVSPOOF5_COSTS) -> tuple[float, float]:
    """Normalised actual DCF and its threshold (ASVspoof 5 ``compute_actDCF``).

    Scores are taken as bona-fide-vs-spoof log-likelihood ratios and thresholded at the Bayes decision point
    (:func:`bayes_threshold`). Uncalibrated scores are penalised here, which is the point of the metric.
    """
    threshold = bayes_threshold(costs)
    rate_miss, rate_fa = rates_at_threshold(bonafide_scores, spoof_scores, threshold)
    return float(normalised_dcf(rate_miss, rate_fa, costs)), threshold


def compute_cllr(bonafide_llrs, spoof_llrs) -> float:
    """Log-likelihood-ratio cost in bits (ASVspoof 5 ``calculate_CLLR``); scores are natural-log LLRs.

    Cllr = (mean log2(1 + e^-s) over bona fide + mean log2(1 + e^s) over spoof) / 2: 1 bit for an
    uninformative all-zero system, near 0 for well-separated calibrated LLRs. ``logaddexp`` keeps large scores
    from overflowing.
    """
    bonafide = as_scores(bonafide_llrs, "bona fide scores")
    spoof = as_scores(spoof_llrs, "spoof scores")
    bits = (np.mean(np.logaddexp(0.0, -bonafide)) + np.mean(np.logaddexp(0.0, spoof))) / (2 * math.log(2))
    return float(bits)


# --------------------------------------------------------------------------------------------------
# bootstrap: resampling speakers (clusters)
# --------------------------------------------------------------------------------------------------
# resamples x trials per vectorised block: 512 KiB int64 arrays stay in cache (2-3x faster than large blocks)
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 16


def cluster_draws(n_clusters: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n_clusters)`` counts: how often each resample draws each cluster (n_clusters draws with
    replacement per resample). Sharing one such matrix between groups makes their resamples paired."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_resamples)


def _eer_at_crossing(bonafide_below, spoof_below, is_bonafide, n_bonafide, n_spoof) -> np.ndarray:
    """The official EER point of weighted resamples, from cumulative copy counts at each block end.

    Along the grid d = (Pmiss - Pfa) nb ns = B ns + S nb - nb ns only grows (B, S: bona fide and spoof copies
    up to there); locate the block where d changes sign, then the copy inside it (integer arithmetic), and take
    the smaller |Pmiss - Pfa| of the two points around the change, computed in floats as the official code does
    (so an exact tie is settled by the same rounding), the earlier one on equality.
    """
    nb, ns = n_bonafide[:, None], n_spoof[:, None]
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
    rates = []
    for copies in (copies_to_cross - 1, copies_to_cross):
        frr_at = (bonafide_start + copies * block_is_bonafide) / n_bonafide
        far_at = (n_spoof - spoof_start - copies * (1 - block_is_bonafide)) / n_spoof
        rates.append((frr_at, far_at))
    (frr_low, far_low), (frr_high, far_high) = rates
    take_low = np.abs(frr_low - far_low) <= np.abs(frr_high - far_high)
    return np.where(take_low, (frr_low + far_low) / 2, (frr_high + far_high) / 2)


def _bootstrap_replicates(
    sorted_is_bonafide: np.ndarray,
    sorted_clusters: np.ndarray,
    draw_counts: np.ndarray,
    costs: DCFCosts,
) -> tuple[np.ndarray, np.ndarray]:
    """EER (fraction) and normalised minDCF of each resample; NaN where a resample lacks a class.

    ``sorted_*`` describe the trials in official sort order; ``draw_counts[b, c]`` is how often resample b
    drew cluster c, so trial i appears ``w = draw_counts[b, cluster_i]`` times. Materialising a resample
    would put the w copies of a trial next to each other, and along the official grid Pmiss - Pfa only grows,
    by a fixed step per copy, so the EER point is found exactly from cumulative weighted counts
    (:func:`_eer_at_crossing`). The DCF is linear along a block, so its minimum lies on block boundaries (or
    at the accept-all start).
    """
    is_bonafide = sorted_is_bonafide.astype(np.int64)
    miss_weight, fa_weight = costs.miss_weight, costs.fa_weight
    normaliser = min(miss_weight, fa_weight)
    eers = np.full(draw_counts.shape[0], np.nan)
    min_dcfs = np.full(draw_counts.shape[0], np.nan)
    rows_per_chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // is_bonafide.size)
    for start in range(0, draw_counts.shape[0], rows_per_chunk):
        weights = draw_counts[start : start + rows_per_chunk, sorted_clusters].astype(np.int64)
        bonafide_weights = weights * is_bonafide
        bonafide_below = np.cumsum(bonafide_weights, axis=1)  # bona fide copies up to each block end
        spoof_below = np.cumsum(weights - bonafide_weights, axis=1)
        n_bonafide, n_spoof = bonafide_below[:, -1], spoof_below[:, -1]
        valid = (n_bonafide > 0) & (n_spoof > 0)
        if not valid.any():
            continue
        bonafide_below, spoof_below = bonafide_below[valid], spoof_below[valid]
        n_bonafide, n_spoof = n_bonafide[valid], n_spoof[valid]
        rows = start + np.flatnonzero(valid)
        # DCF = miss_weight B / nb + fa_weight (ns - S) / ns at every block end
        cost = bonafide_below * (miss_weight / n_bonafide[:, None]) - spoof_below * (
            fa_weight / n_spoof[:, None]
        )
        block_min = cost.min(axis=1) + fa_weight
        min_dcfs[rows] = np.minimum(block_min, fa_weight) / normaliser  # fa_weight: the accept-all point
        eers[rows] = _eer_at_crossing(bonafide_below, spoof_below, is_bonafide, n_bonafide, n_spoof)
    return eers, min_dcfs


def bootstrap_eer_replicates(
    scores: np.ndarray,
    is_bonafide: np.ndarray,
    clusters: np.ndarray,
    draw_counts: np.ndarray,
    costs: DCFCosts = ASVSPOOF5_COSTS,
) -> tuple[np.ndarray, np.ndarray]:
    """EER (fraction) and minDCF of each resample ``draw_counts[b]`` (NaN where a resample lacks a class).

    ``clusters[i]`` is trial i's cluster (speaker) index into the columns of ``draw_counts``. Each value equals
    the official EER / minDCF of the resample built trial by trial, computed for all resamples at once.
    """
    order = np.lexsort((~is_bonafide, scores))  # the official tie order: bona fide first among equal scores
    return _bootstrap_replicates(is_bonafide[order], clusters[order], draw_counts, costs)


def bootstrap_rate_replicates(hits: np.ndarray, clusters: np.ndarray, draw_counts: np.ndarray) -> np.ndarray:
    """The rate ``mean(hits)`` in each resample (NaN where a resample has no trial): a ratio of weighted counts,
    so one matrix product per numerator and denominator."""
    n_clusters = draw_counts.shape[1]
    hits_per_cluster = np.bincount(clusters, weights=hits.astype(np.float64), minlength=n_clusters)
    trials_per_cluster = np.bincount(clusters, minlength=n_clusters).astype(np.float64)
    numerator, denominator = draw_counts @ hits_per_cluster, draw_counts @ trials_per_cluster
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def percentile_interval(replicates: np.ndarray, confidence: float) -> list[float]:
    """``[low, high]`` percentile interval of the finite replicates (NaN marks a dropped resample)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        raise ValueError("bootstrap: every resample lacked bona fide or spoof trials")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is zero" from paired resample differences.

    p = 2 min(P(delta <= 0), P(delta >= 0)), each proportion counted as (k + 1) / (B + 1) so that p is never
    0 with finitely many resamples; capped at 1. It rejects at level alpha exactly when the (1 - alpha)
    percentile interval lies on one side of zero (up to that +1). With few clusters and rare errors it is
    optimistic (about 9 % false positives at 0.05 with ten speakers and a 3 % EER), so the breakdown tests
    differences with :func:`randomisation_p_value` instead.
    """
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        return float("nan")
    below = (np.count_nonzero(finite <= 0) + 1) / (finite.size + 1)
    above = (np.count_nonzero(finite >= 0) + 1) / (finite.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def speaker_swaps(swappable: np.ndarray, n_random: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> np.ndarray:
    """The relabellings of a paired randomisation test: which speakers have their two groups swapped.

    Returns ``(n_relabellings, n_speakers)`` booleans; row 0 swaps nobody (the observed labelling). With K
    ``swappable`` speakers (those with trials in both groups) every one of the 2^K patterns is listed when
    2^K <= max(n_random + 1, 2^EXACT_SWAP_SPEAKERS) (an exact test), else ``n_random`` random ones follow row 0
    (seeded). A speaker that is not swappable is never swapped.
    """
    swappable = np.asarray(swappable, dtype=bool).reshape(-1)
    columns = np.flatnonzero(swappable)
    k = columns.size
    if 2**k <= max(n_random + 1, 2**EXACT_SWAP_SPEAKERS):
        patterns = (np.arange(2**k)[:, None] >> np.arange(k)) & 1 == 1  # row i: the bits of i
    else:
        random = np.random.default_rng(seed).integers(0, 2, size=(n_random, k)) == 1
        patterns = np.vstack((np.zeros((1, k), dtype=bool), random))
    swaps = np.zeros((patterns.shape[0], swappable.size), dtype=bool)
    swaps[:, columns] = patterns
    return swaps


def randomisation_p_value(statistics: np.ndarray) -> float:
    """Two-sided p-value of a randomisation test: ``statistics[0]`` is the observed statistic, the others are
    those of the relabellings (all of them, or random ones).

    p is the share of all values, the observed one included, at least as far from their mean as the observed
    one: the exact p when every relabelling is listed, (1 + #as extreme) / (1 + n) for n random ones. The mean
    is a symmetric function of the values, so centring on it keeps the test exact; it is 0 when the two groups
    mirror each other (every speaker swappable, equal sizes) and otherwise removes the part of the difference
    that no relabelling can change. A relabelling whose statistic is NaN (a group left without a class)
    counts as extreme, which can only make p larger.
    """
    values = np.asarray(statistics, dtype=np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    if values.size == 0 or not np.isfinite(values[0]):
        return float("nan")
    distance = np.abs(values - finite.mean())
    observed = distance[0]
    # the tolerance keeps a mirrored relabelling, equal up to rounding, from looking less extreme
    less_extreme = distance < observed - 1e-9 * (1.0 + observed)
    return float(np.count_nonzero(~less_extreme) / values.size)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; a family of m tests controlled at its level).

    The i-th smallest p is multiplied by (m - i + 1), made non-decreasing, capped at 1; NaN stays NaN and is
    not counted in m.
    """
    values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(values.size, np.nan)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(values[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def _clusters_for(speakers: Sequence[str] | None, n_trials: int) -> tuple[np.ndarray, str, str | None]:
    """Cluster index of each trial, what is resampled, and a note when it is not speakers."""
    n_speakers = 0
    if speakers is not None:
        if len(speakers) != n_trials:
            raise ValueError(f"scores ({n_trials}) and speakers ({len(speakers)}) differ in length")
        _, clusters = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
        n_speakers = int(clusters.max()) + 1
    if n_speakers >= 2:
        return clusters.reshape(-1), "speakers", None
    note = (
        "no speaker labels: trials resampled"
        if speakers is None
        else f"only {n_speakers} speaker: trials resampled instead of speakers"
    )
    return np.arange(n_trials), "trials", note


def bootstrap_ci(
    scores,
    is_bonafide,
    speakers: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    confidence: float = 0.95,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    costs: DCFCosts = ASVSPOOF5_COSTS,
) -> dict:
    """Percentile bootstrap confidence intervals of the EER (%) and the minDCF.

    Speakers are resampled (cluster bootstrap): draw as many speakers as there are, with replacement, and take
    all trials of each drawn speaker (bona fide and spoof alike), so within-speaker correlation widens the
    interval as it should. With fewer than 2 speakers (or ``speakers=None``) single trials are resampled
    instead, and the result says so. Resamples lacking either class are dropped and counted.
    """
    values = as_scores(scores, "scores")
    labels = np.asarray(is_bonafide, dtype=bool).reshape(-1)
    if labels.size != values.size:
        raise ValueError(f"scores ({values.size}) and is_bonafide ({labels.size}) differ in length")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    clusters, resampling, note = _clusters_for(speakers, values.size)
    n_clusters = int(clusters.max()) + 1
    draws = cluster_draws(n_clusters, n_resamples, seed)
    eers, min_dcfs = bootstrap_eer_replicates(values, labels, clusters, draws, costs)
    n_valid = int(np.count_nonzero(np.isfinite(eers)))
    return {
        "confidence": confidence,
        "eer_percent": percentile_interval(100 * eers, confidence),
        "min_dcf": percentile_interval(min_dcfs, confidence),
        "resampling": resampling,
        "n_clusters": n_clusters,
        "n_resamples": n_valid,
        "n_resamples_dropped": n_resamples - n_valid,
        "seed": seed,
        "note": note,
    }
