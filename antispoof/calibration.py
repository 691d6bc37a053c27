"""Score calibration: an affine map from a detector's score to a natural-log likelihood ratio (LLR), fitted by
prior-weighted logistic regression on development scores (ASVspoof 2019 LA dev), saved as JSON beside the run.

    llr = slope * score + offset          log p(score | bona fide) / p(score | spoof)

The fit minimises the cross-entropy with the bona fide trials weighted ``prior / n_bonafide`` and the spoofs
``(1 - prior) / n_spoof`` (as BOSARIS and the ASVspoof calibration baselines do); at ``prior=0.5`` that is the
Cllr on the development set. Decisions then use the Bayes threshold of a cost model (ASVspoof 5 by default):
an LLR >= -log(1.9) = -0.642 is bona fide. numpy only.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antispoof.fileio import write_text_atomically
from antispoof.metrics import ASVSPOOF5_COSTS, DCFCosts, as_scores, bayes_threshold

CALIBRATION_FORMAT = "antispoof-calibration/1"
DEFAULT_PRIOR = 0.5  # bona fide prior of the fit: equal weight to both classes, i.e. minimum Cllr


class CalibrationError(ValueError):
    """A calibration cannot be fitted or read; the message is one line (naming the file where there is one)."""


@dataclass(frozen=True)
class Calibration:
    """``llr = slope * score + offset``, fitted at bona fide prior ``prior``."""

    slope: float
    offset: float
    prior: float = DEFAULT_PRIOR
    fitted_on: str | None = None  # the development score file, for the record

    def to_json(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "llr": "natural-log likelihood ratio bona fide vs spoof = slope * score + offset",
            "slope": self.slope,
            "offset": self.offset,
            "prior": self.prior,
            "fitted_on": self.fitted_on,
        }


def _newton_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """``(a, c)`` minimising sum w log(1 + exp(-(2y - 1)(a x + c))), by Newton's method with step halving.

    The objective is convex; with both classes present and overlapping it has one finite minimum.
    """

    def loss(a: float, c: float) -> float:
        signed = (2 * y - 1) * (a * x + c)
        return float(weights @ np.logaddexp(0.0, -signed))

    a = c = 0.0
    current = loss(a, c)
    for _ in range(100):
        p = 0.5 * (1 + np.tanh(0.5 * (a * x + c)))  # sigmoid, without overflow
        residual, curvature = weights * (p - y), weights * p * (1 - p)
        gradient = np.array([residual @ x, residual.sum()])
        hessian = np.array([[curvature @ (x * x), curvature @ x], [curvature @ x, curvature.sum()]])
        if np.abs(gradient).max() < 1e-13:
            break
        step = np.linalg.pinv(hessian) @ gradient  # pinv: all-equal scores leave the slope undetermined
        length = 1.0
        while loss(a - length * step[0], c - length * step[1]) > current and length > 1e-10:
            length /= 2
        a, c = a - length * step[0], c - length * step[1]
        previous, current = current, loss(a, c)
        if previous - current <= 1e-16 * max(1.0, abs(previous)):
            break
    return a, c


def fit_calibration(
    bonafide_scores, spoof_scores, prior: float = DEFAULT_PRIOR, fitted_on: str | None = None
) -> Calibration:
    """Fit ``llr = slope * score + offset`` on development scores (prior-weighted logistic regression).

    Refuses scores that separate the classes perfectly: the likelihood then has no finite maximum (the slope
    would grow without bound), so no calibration can be estimated from them.
    """
    if not 0 < prior < 1:
        raise CalibrationError(f"calibration prior must be in (0, 1), got {prior}")
    bonafide = as_scores(bonafide_scores, "bona fide development scores")
    spoof = as_scores(spoof_scores, "spoof development scores")
    if bonafide.min() > spoof.max():
        raise CalibrationError(
            f"{fitted_on or 'development scores'}: every bona fide score is above every spoof score, so "
            "logistic calibration has no finite solution (use more or harder development data)"
        )
    scores = np.concatenate((bonafide, spoof))
    centre, scale = scores.mean(), scores.std() or 1.0  # standardised for a well-conditioned Newton step
    labels = np.concatenate((np.ones(bonafide.size), np.zeros(spoof.size)))
    weights = np.concatenate(
        (np.full(bonafide.size, prior / bonafide.size), np.full(spoof.size, (1 - prior) / spoof.size))
    )
    a, c = _newton_logistic((scores - centre) / scale, labels, weights)
    slope = a / scale
    # the fitted log-odds include the prior's log-odds; the LLR is what is left
    offset = c - a * centre / scale - math.log(prior / (1 - prior))
    return Calibration(float(slope), float(offset), prior, fitted_on)


def apply_calibration(calibration: Calibration, scores) -> np.ndarray:
    """Natural-log LLRs of raw detector scores."""
    return calibration.slope * np.asarray(scores, dtype=np.float64) + calibration.offset


def bayes_decision(llrs, costs: DCFCosts = ASVSPOOF5_COSTS) -> np.ndarray:
    """True (bona fide) where the LLR reaches the Bayes threshold of ``costs`` (ASVspoof 5: -log(1.9))."""
    return np.asarray(llrs, dtype=np.float64) >= bayes_threshold(costs)


def decision_labels(llrs, costs: DCFCosts = ASVSPOOF5_COSTS) -> list[str]:
    """``bonafide`` / ``spoof`` per LLR, decided by :func:`bayes_decision`."""
    return ["bonafide" if accept else "spoof" for accept in bayes_decision(llrs, costs)]


def save_calibration(calibration: Calibration, path: str | os.PathLike) -> Path:
    """Write the calibration as JSON (``slope``, ``offset``, ``prior``, ...), atomically."""
    return write_text_atomically(path, json.dumps(calibration.to_json(), indent=1) + "\n")


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read a calibration JSON written by :func:`save_calibration` (one-line errors naming the file)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read calibration: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: calibration is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: calibration must be a JSON object with slope, offset and prior")
    values = {}
    for name in ("slope", "offset", "prior"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalibrationError(
                f"{path}: calibration field {name!r} must be a finite number, got {value!r}"
            )
        values[name] = float(value)
    if not 0 < values["prior"] < 1:
        raise CalibrationError(f"{path}: calibration prior must be in (0, 1), got {values['prior']}")
    fitted_on = data.get("fitted_on")
    return Calibration(
        values["slope"], values["offset"], values["prior"], str(fitted_on) if fitted_on else None
    )
