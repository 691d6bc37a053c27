"""antispoof.calibration: logistic-regression calibration of scores to LLRs, saved and loaded as JSON."""

import json
import math

import numpy as np
import pytest

from antispoof import calibration as cal
from antispoof.metrics import compute_act_dcf, compute_cllr


def dev_like(seed=0, n_bonafide=600, n_spoof=2400, shift=1.0):
    """An uncalibrated detector: well separated but scaled by 3 and shifted."""
    rng = np.random.default_rng(seed)
    return 3 * rng.normal(1.5, 1, n_bonafide) + shift, 3 * rng.normal(-1.5, 1.3, n_spoof) + shift


@pytest.mark.parametrize("prior", [0.5, 0.05, 0.9])
def test_llrs_agree_with_scikit_learn(prior):
    sklearn = pytest.importorskip("sklearn.linear_model")
    bonafide, spoof = dev_like()
    fitted = cal.fit_calibration(bonafide, spoof, prior=prior)
    scores = np.concatenate((bonafide, spoof))
    labels = np.concatenate((np.ones(bonafide.size), np.zeros(spoof.size)))
    # the same objective: each class weighted to its prior share, no regularisation
    weights = np.where(labels == 1, prior / bonafide.size, (1 - prior) / spoof.size) * labels.size
    reference = sklearn.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    reference.fit(scores[:, None], labels, sample_weight=weights)
    test_scores = np.random.default_rng(5).normal(0, 6, 500)  # a test set, inside and beyond the dev range
    expected = reference.decision_function(test_scores[:, None]) - math.log(prior / (1 - prior))
    np.testing.assert_allclose(cal.apply_calibration(fitted, test_scores), expected, rtol=0, atol=1e-4)


def test_gaussian_scores_get_their_true_llr():
    # bona fide N(2, 1), spoof N(-2, 1): log N(s; 2, 1) / N(s; -2, 1) = 4 s exactly
    rng = np.random.default_rng(1)
    fitted = cal.fit_calibration(rng.normal(2, 1, 20_000), rng.normal(-2, 1, 20_000))
    assert fitted.slope == pytest.approx(4.0, rel=0.03) and fitted.offset == pytest.approx(0.0, abs=0.05)
    assert fitted.prior == 0.5


def test_calibration_lowers_cllr_and_act_dcf_but_keeps_the_order():
    bonafide, spoof = dev_like(seed=2, shift=5.0)  # most spoofs score above 0: far from calibrated
    fitted = cal.fit_calibration(bonafide, spoof, fitted_on="dev_scores.txt")
    test_bonafide, test_spoof = dev_like(seed=3, shift=5.0)
    llr_bonafide, llr_spoof = (
        cal.apply_calibration(fitted, test_bonafide),
        cal.apply_calibration(fitted, test_spoof),
    )
    assert compute_cllr(llr_bonafide, llr_spoof) < 0.5 * compute_cllr(test_bonafide, test_spoof)
    assert compute_act_dcf(llr_bonafide, llr_spoof)[0] < compute_act_dcf(test_bonafide, test_spoof)[0]
    assert fitted.slope > 0  # a monotone map: the EER and DET are unchanged


def test_bayes_decision_at_the_asvspoof5_threshold():
    threshold = -math.log(1.9)
    decisions = cal.bayes_decision([threshold - 1e-9, threshold, 0.0, -5.0])
    assert decisions.tolist() == [False, True, True, False]
    assert cal.decision_labels([threshold, -5.0]) == ["bonafide", "spoof"]


def test_save_and_load_round_trip(tmp_path):
    fitted = cal.Calibration(slope=0.25, offset=-1.5, prior=0.3, fitted_on="dev_scores.txt")
    path = cal.save_calibration(fitted, tmp_path / "calibration.json")
    data = json.loads(path.read_text())
    assert (data["slope"], data["offset"], data["prior"]) == (0.25, -1.5, 0.3)
    assert cal.load_calibration(path) == fitted
    np.testing.assert_allclose(cal.apply_calibration(fitted, [0.0, 4.0]), [-1.5, -0.5])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "calibration is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"slope": 1.0, "prior": 0.5}', "field 'offset' must be a finite number, got None"),
        ('{"slope": "1", "offset": 0, "prior": 0.5}', "field 'slope' must be a finite number"),
        ('{"slope": 1, "offset": 0, "prior": 1.5}', r"prior must be in \(0, 1\)"),
    ],
)
def test_load_errors_are_one_line_and_name_the_file(tmp_path, content, message):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(cal.CalibrationError, match=message) as info:
        cal.load_calibration(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(cal.CalibrationError, match="cannot read calibration"):
        cal.load_calibration(tmp_path / "absent.json")


def test_fit_refuses_separable_scores_and_bad_priors():
    with pytest.raises(cal.CalibrationError, match="dev.txt: every bona fide score is above every spoof"):
        cal.fit_calibration([2.0, 3.0], [0.0, 1.0], fitted_on="dev.txt")
    with pytest.raises(cal.CalibrationError, match="prior"):
        cal.fit_calibration([2.0, 0.0], [0.0, 1.0], prior=1.0)
    flat = cal.fit_calibration([1.0, 1.0], [1.0, 1.0])  # no information: LLR 0 everywhere
    assert flat.slope == 0.0 and flat.offset == pytest.approx(0.0, abs=1e-12)
