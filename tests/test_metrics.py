"""antispoof.metrics: EER, DET, t-DCF, minDCF/actDCF, Cllr and the speaker bootstrap, on hand-computed inputs."""

import math
import time

import numpy as np
import pytest

from antispoof import metrics


# ----------------------------------------------------------------------------------------------------------
# EER, DET, t-DCF on hand-computed cases
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bonafide", "spoof", "eer", "threshold"),
    [
        ([2, 3], [0, 1], 0.0, 1.0),  # separated: the EER point rejects both spoofs
        ([0, 1], [2, 3], 1.0, 1.0),  # reversed: every decision wrong
        ([1, 3, 5], [0, 2, 4], 1 / 3, 2.0),  # interleaved: Pmiss = Pfa = 1/3 after rejecting 0, 1, 2
        ([0.5, 0.6, 0.9, 1.0], [0.1, 0.7], 0.5, 0.6),  # Pmiss 2/4, Pfa 1/2
        ([1, 1], [1, 1], 1.0, 1.0),  # all tied: the official sort puts bona fide first among equal scores
    ],
)
def test_eer_hand_computed(bonafide, spoof, eer, threshold):
    got_eer, got_threshold = metrics.compute_eer(np.array(bonafide, float), np.array(spoof, float))
    assert got_eer == pytest.approx(eer, abs=1e-12)
    assert got_threshold == threshold


def test_det_curve_grid():
    frr, far, thresholds = metrics.compute_det_curve([1.0, 3.0, 5.0], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(frr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(far, [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(thresholds, [-0.001, 0, 1, 2, 3, 4, 5])


def test_eer_refuses_empty_or_non_finite():
    with pytest.raises(ValueError, match="at least one"):
        metrics.compute_eer([], [1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.compute_eer([1.0, np.nan], [0.0])


def test_tdcf_curve_hand_computed():
    cost = metrics.ASVSPOOF2019_TDCF_COST_MODEL
    pfa, pmiss, pmiss_spoof = 0.02, 0.03, 0.4
    curve, thresholds = metrics.compute_tdcf_curve([2.0, 3.0, 4.0], [0.0, 1.0, 1.5], pfa, pmiss, pmiss_spoof)
    c1 = 0.95 * 0.99 * (1 - 1 * pmiss) - 0.95 * 0.01 * 10 * pfa
    c2 = 10 * 0.05 * (1 - pmiss_spoof)
    assert cost["Ptar"] == pytest.approx(0.9405) and cost["Pnon"] == pytest.approx(0.0095)
    assert curve[0] == pytest.approx(c2 / min(c1, c2))  # accept everything: every spoof passes the CM
    assert curve[-1] == pytest.approx(c1 / min(c1, c2))  # reject everything
    assert curve.min() == 0.0 and thresholds[np.argmin(curve)] == 1.5  # a perfect CM costs nothing
    with pytest.raises(ValueError, match="soft CM scores"):
        metrics.compute_tdcf_curve([1.0, 1.0], [0.0, 0.0], pfa, pmiss, pmiss_spoof)


def test_asv_operating_point_is_at_asv_eer():
    asv = metrics.ASVScores(
        np.array([1.0, 2.0, 3.0, 4.0]), np.array([-1.0, 0.0, 1.5, 5.0]), np.array([0.5, 3.5])
    )
    rates = metrics.asv_error_rates(asv)
    assert rates["threshold"] == metrics.compute_eer(asv.target, asv.nontarget)[1]
    t = rates["threshold"]
    assert rates["pfa"] == np.mean(asv.nontarget >= t) and rates["pmiss"] == np.mean(asv.target < t)
    assert rates["pmiss_spoof"] == np.mean(asv.spoof < t)


# ----------------------------------------------------------------------------------------------------------
# CM-only metrics (ASVspoof 5)
# ----------------------------------------------------------------------------------------------------------
def test_cllr_sanity():
    assert metrics.compute_cllr(np.zeros(7), np.zeros(3)) == pytest.approx(1.0, abs=1e-15)
    assert metrics.compute_cllr([30.0, 40.0], [-30.0, -50.0]) < 1e-12
    assert math.isfinite(metrics.compute_cllr([-1e4], [1e4]))  # no overflow on huge wrong scores
    rng = np.random.default_rng(0)
    # N(+4, 8) vs N(-4, 8): the score itself is the log-likelihood ratio, i.e. perfectly calibrated
    bonafide, spoof = rng.normal(4, math.sqrt(8), 4000), rng.normal(-4, math.sqrt(8), 4000)
    calibrated = metrics.compute_cllr(bonafide, spoof)
    for scale in (0.3, 3.0):  # mis-scaled LLRs of the same discrimination cost more
        assert metrics.compute_cllr(scale * bonafide, scale * spoof) > calibrated + 0.05
    well_separated = metrics.compute_cllr(
        rng.normal(20, math.sqrt(40), 4000), rng.normal(-20, math.sqrt(40), 4000)
    )
    assert well_separated < 0.01


def test_min_and_act_dcf_hand_computed():
    # threshold -log(1.9) = -0.642: bona fide -1 is missed, spoof -0.5 is accepted
    act, threshold = metrics.compute_act_dcf([0.0, -1.0], [-2.0, -0.5])
    assert threshold == pytest.approx(-math.log(1.9))
    assert act == pytest.approx((0.95 * 0.5 + 0.5 * 0.5) / 0.5)
    # min DCF: best is rejecting only the lowest spoof (Pmiss 0, Pfa 1/2) -> 0.5 * 0.5 / 0.5
    assert metrics.compute_min_dcf([0.0, -1.0], [-2.0, -0.5])[0] == pytest.approx(0.5)
    assert metrics.compute_min_dcf([3.0, 4.0], [0.0, 1.0])[0] == 0.0
    assert metrics.compute_min_dcf(np.zeros(4), np.zeros(4))[0] == pytest.approx(1.0)  # a useless CM
    # calibration does not change min DCF but does change act DCF
    rng = np.random.default_rng(1)
    bonafide, spoof = rng.normal(2, 1, 500), rng.normal(-2, 1, 500)
    assert metrics.compute_min_dcf(bonafide + 5, spoof + 5)[0] == pytest.approx(
        metrics.compute_min_dcf(bonafide, spoof)[0]
    )
    assert metrics.compute_act_dcf(bonafide + 5, spoof + 5)[0] > metrics.compute_act_dcf(bonafide, spoof)[0]
    assert metrics.compute_min_dcf(bonafide, spoof)[0] <= metrics.compute_act_dcf(bonafide, spoof)[0]


# ----------------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------------
def synthetic_trials(n_speakers: int, per_speaker: int = 40, seed: int = 0):
    """Bona fide N(1.5 + u, 1) and spoof N(u, 1) per speaker, with a speaker effect u ~ N(0, 0.7)."""
    rng = np.random.default_rng(seed)
    scores, labels, speakers = [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, 0.7)
        is_bonafide = np.arange(per_speaker) % 2 == 0
        scores.append(rng.normal(offset + 1.5 * is_bonafide, 1.0))
        labels.append(is_bonafide)
        speakers += [f"spk{s}"] * per_speaker
    return np.concatenate(scores), np.concatenate(labels), speakers


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_speakers():
    widths = []
    for n_speakers in (6, 60):
        scores, labels, speakers = synthetic_trials(n_speakers)
        eer = 100 * metrics.compute_eer(scores[labels], scores[~labels])[0]
        min_dcf = metrics.compute_min_dcf(scores[labels], scores[~labels])[0]
        ci = metrics.bootstrap_ci(scores, labels, speakers, n_resamples=400, seed=3)
        assert ci["resampling"] == "speakers" and ci["n_clusters"] == n_speakers and ci["note"] is None
        assert ci["eer_percent"][0] <= eer <= ci["eer_percent"][1]
        assert ci["min_dcf"][0] <= min_dcf <= ci["min_dcf"][1]
        widths.append(ci["eer_percent"][1] - ci["eer_percent"][0])
    assert widths[1] < 0.6 * widths[0], widths
    again = metrics.bootstrap_ci(scores, labels, speakers, n_resamples=400, seed=3)
    assert again == ci  # fixed seed, same interval


def test_bootstrap_falls_back_to_trials_with_one_speaker():
    scores, labels, _ = synthetic_trials(1, per_speaker=200)
    ci = metrics.bootstrap_ci(scores, labels, ["only"] * scores.size, n_resamples=200)
    assert ci["resampling"] == "trials" and ci["n_clusters"] == scores.size
    assert "only 1 speaker" in ci["note"]
    assert ci["eer_percent"][0] < ci["eer_percent"][1]
    assert metrics.bootstrap_ci(scores, labels, None, n_resamples=50)["resampling"] == "trials"


def test_bootstrap_replicates_equal_materialised_resamples():
    """The vectorised replicates equal the official EER / minDCF on each resample built trial by trial."""
    rng = np.random.default_rng(7)
    for case in range(25):
        n, n_clusters = int(rng.integers(6, 120)), int(rng.integers(1, 9))
        clusters = rng.integers(0, n_clusters, n)
        labels = rng.random(n) < 0.5
        labels[:2] = [True, False]
        scores = rng.normal(size=n) + labels
        if case % 2:
            scores = np.round(scores * 2) / 2  # many ties
        _, clusters = np.unique(clusters, return_inverse=True)
        k = clusters.max() + 1
        draws = rng.multinomial(k, np.full(k, 1 / k), size=30)
        order = np.lexsort((~labels, scores))
        eers, dcfs = metrics._bootstrap_replicates(
            labels[order], clusters[order], draws, metrics.DCFCosts(0.05, 1.0, 10.0)
        )
        eers, dcfs = eers[np.isfinite(eers)], dcfs[np.isfinite(dcfs)]  # NaN marks a resample lacking a class
        expected_eers, expected_dcfs = [], []
        for counts in draws:
            picked = np.repeat(np.arange(n), counts[clusters])
            s, l = scores[picked], labels[picked]
            if l.all() or not l.any():
                continue
            expected_eers.append(metrics.compute_eer(s[l], s[~l])[0])
            expected_dcfs.append(metrics.compute_min_dcf(s[l], s[~l])[0])
        np.testing.assert_allclose(eers, expected_eers, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dcfs, expected_dcfs, rtol=0, atol=1e-12)


def test_bootstrap_is_fast_on_10k_trials():
    scores, labels, speakers = synthetic_trials(20, per_speaker=500)
    start = time.perf_counter()
    ci = metrics.bootstrap_ci(scores, labels, speakers)  # default 1000 resamples
    assert ci["n_resamples"] == 1000
    assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------------------------------------
# fixed operating point, paired bootstrap, p-values, Holm (hand-computed)
# ----------------------------------------------------------------------------------------------------------
def test_rates_at_threshold_hand_computed():
    # threshold 1.0: bona fide 0.5 is rejected (1 of 4); spoofs 1.0 (tie: accepted) and 2.0 pass (2 of 5)
    rejected, accepted = metrics.rates_at_threshold([0.5, 1.5, 2.0, 3.0], [-1.0, 0.0, 0.9, 1.0, 2.0], 1.0)
    assert (rejected, accepted) == (0.25, 0.4)
    assert metrics.rates_at_threshold([1.0], [0.0], -10.0) == (0.0, 1.0)  # accept everything


def test_bayes_threshold_and_dcf_costs():
    assert metrics.bayes_threshold() == pytest.approx(-math.log(1.9))
    costs = metrics.DCFCosts(p_spoof=0.5, c_miss=1.0, c_fa=1.0)
    assert metrics.bayes_threshold(costs) == 0.0
    assert metrics.normalised_dcf(0.2, 0.1, costs) == pytest.approx((0.5 * 0.2 + 0.5 * 0.1) / 0.5)


def test_bootstrap_rate_replicates_hand_computed():
    # speaker 0: 1 of 2 hits, speaker 1: 0 of 1, speaker 2: 2 of 2
    hits = np.array([True, False, False, True, True])
    clusters = np.array([0, 0, 1, 2, 2])
    draws = np.array([[3, 0, 0], [0, 3, 0], [1, 1, 1], [0, 1, 2], [0, 0, 0]])
    rates = metrics.bootstrap_rate_replicates(hits, clusters, draws)
    np.testing.assert_allclose(rates[:4], [1 / 2, 0.0, 3 / 5, 4 / 5])
    assert np.isnan(rates[4])  # a resample without any of these trials


def test_cluster_draws_resample_every_cluster_count():
    draws = metrics.cluster_draws(7, 50, seed=3)
    assert draws.shape == (50, 7) and (draws.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(draws, metrics.cluster_draws(7, 50, seed=3))


def test_bootstrap_p_value_hand_computed():
    # 9 resample differences, all positive: P(<= 0) = (0 + 1) / 10, two-sided 0.2
    assert metrics.bootstrap_p_value(np.arange(1.0, 10.0)) == pytest.approx(0.2)
    # 2 of 9 at or below zero: (2 + 1) / 10 = 0.3 on that side, p = 0.6
    assert metrics.bootstrap_p_value(np.array([-1.0, 0.0, 1, 2, 3, 4, 5, 6, 7])) == pytest.approx(0.6)
    assert metrics.bootstrap_p_value(np.zeros(5)) == 1.0  # no difference in any resample
    assert metrics.bootstrap_p_value(np.array([np.nan, 1.0, 2.0, 3.0])) == pytest.approx(0.5)  # NaN dropped


def test_holm_adjust_hand_computed():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5
    adjusted = metrics.holm_adjust([0.03, 0.5, 0.01, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.5, 0.04, 0.06])
    assert metrics.holm_adjust([0.6, 0.3]) == [0.6, 0.6]  # capped and non-decreasing
    nan_kept = metrics.holm_adjust([0.01, float("nan")])
    assert nan_kept[0] == 0.01 and math.isnan(nan_kept[1])  # NaN is not counted in m


def test_percentile_interval_drops_nan_and_refuses_all_nan():
    assert metrics.percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == [1.5, 2.5]
    with pytest.raises(ValueError, match="every resample"):
        metrics.percentile_interval(np.array([np.nan]), 0.95)


def test_speaker_swaps_list_every_pattern_or_random_ones():
    swaps = metrics.speaker_swaps(np.array([True, False, True]), n_random=10)
    # two swappable speakers (0 and 2): all four patterns, the observed labelling first; speaker 1 never swaps
    np.testing.assert_array_equal(
        swaps, [[False, False, False], [True, False, False], [False, False, True], [True, False, True]]
    )
    many = metrics.speaker_swaps(np.ones(14, dtype=bool), n_random=100, seed=3)  # 2^14 > 2^12: random
    assert many.shape == (101, 14) and not many[0].any() and 0.4 < many[1:].mean() < 0.6
    np.testing.assert_array_equal(many, metrics.speaker_swaps(np.ones(14, dtype=bool), 100, seed=3))
    assert metrics.speaker_swaps(np.ones(12, dtype=bool), n_random=100).shape == (4096, 12)  # exact up to 12
    assert metrics.speaker_swaps(np.zeros(3, dtype=bool)).shape == (1, 3)  # nobody to swap: only the observed


def test_randomisation_p_value_hand_computed():
    # mean 0; |observed| 3 is reached by itself and by -3: 2 of 8
    assert metrics.randomisation_p_value(np.array([3.0, -3, 1, -1, 0, 0, 2, -2])) == 2 / 8
    # mean 1: distances 2, 2, 0, 0 -> 2 of 4 at least as far as the observed
    assert metrics.randomisation_p_value(np.array([3.0, -1, 1, 1])) == 2 / 4
    assert metrics.randomisation_p_value(np.array([0.0, 3, -3, 1])) == 1.0  # the observed is the mean
    # a relabelling without a result (NaN) counts as extreme: 2 of 4 rather than 1 of 4
    assert metrics.randomisation_p_value(np.array([5.0, np.nan, -1, 0])) == 2 / 4
    assert np.isnan(metrics.randomisation_p_value(np.array([np.nan, 1.0])))
    # a mirrored value equal up to rounding counts as equally extreme
    assert metrics.randomisation_p_value(np.array([0.1 + 0.2, -0.3, 0, 0])) == 2 / 4
