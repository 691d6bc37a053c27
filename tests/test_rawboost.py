"""RawBoost: every algorithm keeps length, stays finite, changes the signal, and is reproducible per seed."""

import numpy as np
import pytest

from antispoof.augment.rawboost import ALGORITHMS, DEFAULTS, RawBoost, fir_filter, make_rawboost, rawboost

SR = 16000


@pytest.fixture(scope="module")
def speechlike():
    """A voiced-like signal: harmonics of 140 Hz under a syllable envelope, plus a little noise."""
    rng = np.random.default_rng(7)
    t = np.arange(int(1.5 * SR)) / SR
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.3 * voiced * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("algo", range(1, 9))
def test_algorithm_keeps_length_and_changes_signal(algo, speechlike):
    y = rawboost(speechlike, SR, algo, np.random.default_rng(123))
    assert y.shape == speechlike.shape and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert np.abs(y - speechlike).max() > 1e-3
    assert np.array_equal(y, rawboost(speechlike, SR, algo, np.random.default_rng(123)))
    assert not np.array_equal(y, rawboost(speechlike, SR, algo, np.random.default_rng(124)))


def test_algorithm_zero_is_identity(speechlike):
    assert np.array_equal(rawboost(speechlike, SR, 0, np.random.default_rng(0)), speechlike)
    assert RawBoost.from_config({"algo": 0}) is None and RawBoost.from_config(None) is None


def test_ssi_noise_respects_the_snr_range(speechlike):
    for seed in range(5):
        y = rawboost(speechlike, SR, 3, np.random.default_rng(seed), SNRmin=20, SNRmax=20)
        snr = 10 * np.log10(
            np.sum(speechlike.astype(float) ** 2) / np.sum((y - speechlike.astype(float)) ** 2)
        )
        assert snr == pytest.approx(20, abs=0.01)


def test_isd_touches_at_most_p_percent(speechlike):
    x = speechlike.astype(np.float64)
    y = rawboost(x, SR, 2, np.random.default_rng(3), P=10)
    ratio = y[x != 0] / x[x != 0]
    scale = np.median(ratio)  # 1, or the peak normalisation when the impulses pushed the peak past 1
    changed = np.mean(np.abs(ratio - scale) > 1e-9)
    assert 0 < changed <= 0.10


def test_outputs_stay_bounded(speechlike):
    loud = speechlike * 3
    for algo in (1, 2, 5, 8):  # these end with a peak normalisation when the peak exceeds 1
        assert np.abs(rawboost(loud, SR, algo, np.random.default_rng(0))).max() <= 1 + 1e-6


def test_fir_filter_keeps_alignment():
    impulse = np.zeros(101)
    impulse[50] = 1.0
    b = np.zeros(11)
    b[5] = 1.0  # a pure delay of 5 samples, linear phase
    assert fir_filter(impulse, b).shape == impulse.shape
    assert np.argmax(np.abs(fir_filter(impulse, b))) in (49, 50, 51)


def test_config_interface(speechlike):
    augment = make_rawboost({"algo": 5, "SNRmin": 5})  # what main.py calls with config["rawboost"]
    assert (
        augment.algo == 5 and augment.params["SNRmin"] == 5 and augment.params["nBands"] == DEFAULTS["nBands"]
    )
    y = augment(speechlike, np.random.default_rng(1))
    assert np.array_equal(y, rawboost(speechlike, SR, 5, np.random.default_rng(1), SNRmin=5))
    with pytest.raises(ValueError, match="unknown parameter"):
        RawBoost.from_config({"algo": 5, "snr_min": 3})
    with pytest.raises(ValueError, match='"algo"'):
        RawBoost.from_config({"SNRmin": 3})
    with pytest.raises(ValueError, match="algo 9"):
        rawboost(speechlike, SR, 9, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        rawboost(speechlike, SR, 1, 42)
    assert set(ALGORITHMS) == set(range(9))
