"""RawBoost: data boosting and augmentation of raw waveforms for anti-spoofing training.

H. Tak, M. Kamble, J. Patino, M. Todisco, N. Evans, "RawBoost: A Raw Data Boosting and Augmentation Method
applied to Automatic Speaker Verification Anti-Spoofing", Proc. ICASSP 2022, pp. 6382-6386. Re-implemented
after the authors' RawBoost.py and ``process_Rawboost_feature`` (TakHemlata/SSL_Anti-spoofing), with every
random draw taken from a ``numpy.random.Generator`` passed in, so that augmentation is reproducible and
worker-safe.

Three kinds of noise:

1. linear and non-linear convolutive noise (LnL): the sum of the first ``N_f`` powers of the signal, each
   through a random cascade of ``nBands`` notch (band-stop FIR) filters, the non-linear terms
   ``minBiasLinNonLin`` to ``maxBiasLinNonLin`` dB quieter than the linear one (channel and coding
   distortions);
2. impulsive signal-dependent additive noise (ISD): up to ``P`` % of the samples get a signal-proportional
   impulse of gain up to ``g_sd`` (clipping, non-linear amplifiers);
3. stationary signal-independent additive noise (SSI): white noise through a random notch-filter cascade,
   added at an SNR drawn from [``SNRmin``, ``SNRmax``] dB (coloured background noise).

Algorithms (``algo``): 0 none; 1 LnL; 2 ISD; 3 SSI; 4 LnL -> ISD -> SSI; 5 LnL -> ISD; 6 LnL -> SSI; 7 ISD ->
SSI; 8 LnL and ISD in parallel (summed, then normalised). The authors train with 5 for ASVspoof LA and 3 for
DF.

Use from a config: ``"rawboost": {"algo": 5}`` (other keys override the defaults below, with the authors'
names); ``augment = RawBoost.from_config(config.get("rawboost"))`` gives ``None`` when absent or ``algo`` is
0, else a callable ``augment(waveform, rng)`` on 16 kHz audio. The training set applies it to the whole
utterance before cutting (config ``"augment_on": "utterance"``, as SSL_Anti-spoofing's ``data_utils_SSL.py``)
or to the cut crop (``"crop"``, the default).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import signal

# the paper's (and the authors' command-line) defaults
DEFAULTS: dict[str, float] = {
    # LnL convolutive noise and the notch filters shared with SSI
    "N_f": 5,  # order of the (non-)linearity; 1 = linear only
    "nBands": 5,  # notch filters per cascade
    "minF": 20,  # centre frequency range (Hz)
    "maxF": 8000,
    "minBW": 100,  # bandwidth range (Hz)
    "maxBW": 1000,
    "minCoeff": 10,  # filter length range (taps)
    "maxCoeff": 100,
    "minG": 0,  # gain range of the linear component (dB)
    "maxG": 0,
    "minBiasLinNonLin": 5,  # how much quieter the non-linear components are (dB)
    "maxBiasLinNonLin": 20,
    # ISD impulsive noise
    "P": 10,  # at most this % of the samples
    "g_sd": 2,  # gain
    # SSI coloured additive noise
    "SNRmin": 10,  # dB
    "SNRmax": 40,
}

ALGORITHMS = {
    0: "none",
    1: "LnL",
    2: "ISD",
    3: "SSI",
    4: "LnL -> ISD -> SSI",
    5: "LnL -> ISD",
    6: "LnL -> SSI",
    7: "ISD -> SSI",
    8: "LnL || ISD",
}


def _uniform(rng: np.random.Generator, low: float, high: float, integer: bool = False) -> float:
    # low > high happens for the non-linear gains (e.g. -5 to -20 dB); numpy's legacy uniform allowed it
    value = low + (high - low) * float(rng.random())
    return int(value) if integer else value


def normalise(x: np.ndarray, always: bool) -> np.ndarray:
    """Scale to peak 1 (``always``), or only when the peak exceeds 1."""
    peak = np.max(np.abs(x))
    if peak > 0 and (always or peak > 1):
        return x / peak
    return x


def notch_cascade(
    rng: np.random.Generator,
    sr: int,
    nBands: int,
    minF: float,
    maxF: float,
    minBW: float,
    maxBW: float,
    minCoeff: int,
    maxCoeff: int,
    minG: float,
    maxG: float,
) -> np.ndarray:
    """FIR taps of ``nBands`` random band-stop filters in series, scaled to a random peak gain (dB)."""
    b = np.ones(1)
    nyquist = sr / 2
    for _ in range(int(nBands)):
        centre = _uniform(rng, minF, maxF)
        width = _uniform(rng, minBW, maxBW)
        taps = _uniform(rng, minCoeff, maxCoeff, integer=True)
        taps += 1 - taps % 2  # a band-stop FIR passes Nyquist, so it needs an odd length
        low = max(centre - width / 2, 1e-3)
        high = min(centre + width / 2, nyquist - 1e-3)
        low = min(low, high - 1e-3)
        b = np.convolve(signal.firwin(taps, [low, high], window="hamming", fs=sr), b)
    gain_db = _uniform(rng, minG, maxG)
    _, response = signal.freqz(b, 1, fs=sr)
    return 10 ** (gain_db / 20) * b / np.max(np.abs(response))


def fir_filter(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Filter with ``b``, compensating the delay so that the output keeps the input's length and alignment."""
    n = b.shape[0] + 1
    y = signal.lfilter(b, 1, np.pad(x, (0, n)))
    return y[n // 2 : n // 2 + x.shape[0]]


def lnl_convolutive_noise(x: np.ndarray, sr: int, rng: np.random.Generator, p: Mapping) -> np.ndarray:
    """Linear and non-linear convolutive noise (algorithm 1)."""
    y = np.zeros_like(x)
    min_g, max_g = p["minG"], p["maxG"]
    for order in range(1, int(p["N_f"]) + 1):
        if order == 2:  # every non-linear term is quieter than the linear one by the bias
            min_g, max_g = min_g - p["minBiasLinNonLin"], max_g - p["maxBiasLinNonLin"]
        b = notch_cascade(
            rng, sr, p["nBands"], p["minF"], p["maxF"], p["minBW"], p["maxBW"], p["minCoeff"], p["maxCoeff"],
            min_g, max_g,
        )  # fmt: skip
        y = y + fir_filter(np.power(x, order), b)
    return normalise(y - np.mean(y), always=False)


def isd_additive_noise(x: np.ndarray, rng: np.random.Generator, p: Mapping) -> np.ndarray:
    """Impulsive signal-dependent additive noise (algorithm 2)."""
    share = _uniform(rng, 0, p["P"])  # percent of the samples
    count = int(x.shape[0] * share / 100)
    where = rng.permutation(x.shape[0])[:count]
    shape = (2 * rng.random(count) - 1) * (2 * rng.random(count) - 1)
    y = x.copy()
    y[where] = x[where] + p["g_sd"] * x[where] * shape
    return normalise(y, always=False)


def ssi_additive_noise(x: np.ndarray, sr: int, rng: np.random.Generator, p: Mapping) -> np.ndarray:
    """Stationary signal-independent (coloured) additive noise (algorithm 3)."""
    noise = rng.normal(0, 1, x.shape[0])
    b = notch_cascade(
        rng, sr, p["nBands"], p["minF"], p["maxF"], p["minBW"], p["maxBW"], p["minCoeff"], p["maxCoeff"],
        p["minG"], p["maxG"],
    )  # fmt: skip
    noise = normalise(fir_filter(noise, b), always=True)
    snr_db = _uniform(rng, p["SNRmin"], p["SNRmax"])
    noise_norm = np.linalg.norm(noise)
    if noise_norm > 0:
        noise = noise / noise_norm * np.linalg.norm(x) / 10.0 ** (0.05 * snr_db)
    return x + noise


def check_params(params: Mapping) -> dict:
    """Defaults overridden by ``params``; unknown names and empty ranges are errors."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"rawboost: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    for low, high in (("minF", "maxF"), ("minBW", "maxBW"), ("minCoeff", "maxCoeff"), ("SNRmin", "SNRmax")):
        if p[low] > p[high]:
            raise ValueError(f"rawboost: {low} = {p[low]} exceeds {high} = {p[high]}")
    if int(p["N_f"]) < 1 or int(p["nBands"]) < 1 or p["minCoeff"] < 1 or p["P"] < 0 or p["minF"] < 0:
        raise ValueError("rawboost: N_f, nBands and minCoeff must be >= 1, P and minF >= 0")
    return p


def rawboost(x: np.ndarray, sr: int, algo: int, rng: np.random.Generator, **params) -> np.ndarray:
    """Apply RawBoost algorithm ``algo`` (0-8) to a mono waveform; same length and dtype as ``x``."""
    if algo not in ALGORITHMS:
        raise ValueError(f"rawboost: algo {algo!r} is not one of {', '.join(map(str, ALGORITHMS))}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rawboost: rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed))")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"rawboost: expected a mono waveform (1-D), got shape {x.shape}")
    p = check_params(params)
    if algo == 0 or x.shape[0] == 0:
        return x.copy()
    y = x.astype(np.float64)
    if algo == 1:
        y = lnl_convolutive_noise(y, sr, rng, p)
    elif algo == 2:
        y = isd_additive_noise(y, rng, p)
    elif algo == 3:
        y = ssi_additive_noise(y, sr, rng, p)
    elif algo == 4:
        y = ssi_additive_noise(isd_additive_noise(lnl_convolutive_noise(y, sr, rng, p), rng, p), sr, rng, p)
    elif algo == 5:
        y = isd_additive_noise(lnl_convolutive_noise(y, sr, rng, p), rng, p)
    elif algo == 6:
        y = ssi_additive_noise(lnl_convolutive_noise(y, sr, rng, p), sr, rng, p)
    elif algo == 7:
        y = ssi_additive_noise(isd_additive_noise(y, rng, p), sr, rng, p)
    else:  # 8: both applied to the clean signal, summed
        y = normalise(lnl_convolutive_noise(y, sr, rng, p) + isd_additive_noise(y, rng, p), always=False)
    return y.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)


class RawBoost:
    """A configured RawBoost augmentation: ``RawBoost(algo=5)(waveform, rng, sr=16000)``."""

    def __init__(self, algo: int = 5, sr: int = 16000, **params):
        if algo not in ALGORITHMS:
            raise ValueError(f"rawboost: algo {algo!r} is not one of {', '.join(map(str, ALGORITHMS))}")
        self.algo, self.sr, self.params = int(algo), int(sr), check_params(params)

    @classmethod
    def from_config(cls, config: Mapping | None) -> RawBoost | None:
        """``None`` for a missing config or ``algo`` 0; else the augmentation (``{"algo": 5, ...}``)."""
        if not config:
            return None
        if not isinstance(config, Mapping) or "algo" not in config:
            raise ValueError(f'rawboost config must be a dict with an "algo" key (0-8), got {config!r}')
        config = dict(config)
        algo = config.pop("algo")
        if algo == 0:
            return None
        return cls(algo=algo, **config)

    def __call__(self, x: np.ndarray, rng: np.random.Generator, sr: int | None = None) -> np.ndarray:
        return rawboost(x, sr or self.sr, self.algo, rng, **self.params)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if DEFAULTS[k] != v}
        return f"RawBoost(algo={self.algo} [{ALGORITHMS[self.algo]}], sr={self.sr}, {changed})"


def make_rawboost(config: Mapping | None) -> RawBoost | None:
    """The augmentation a config's ``"rawboost"`` entry asks for (``None`` when absent or ``algo`` is 0)."""
    return RawBoost.from_config(config)
