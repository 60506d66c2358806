"""Temperature scaling of video probabilities: one parameter T > 0 on the video logit.

``p' = sigmoid(logit(p) / T)``: T > 1 pulls over-confident scores towards 0.5, T < 1 pushes timid ones
out; the order of the videos, and so the AUC, stays the same. T is fitted by minimising the log loss of
the calibrated probabilities on videos the model was not trained on (the validation fold), with
probabilities clipped like the DFDC leaderboard (``core.metrics.LOG_LOSS_EPS``) before the logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit

from core.metrics import LOG_LOSS_EPS, log_loss

METHOD = "temperature"
# the search range of log T: T from 0.05 (scores pushed far out) to 20 (scores pulled almost to 0.5)
LOG_TEMPERATURE_BOUNDS = (math.log(0.05), math.log(20.0))


def apply_temperature(probabilities: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / T)`` of each probability (clipped to [eps, 1 - eps] first)."""
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"a temperature must be a positive number, got {temperature!r}")
    p = np.clip(np.asarray(probabilities, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return expit(logit(p) / temperature)


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    videos: int
    log_loss_before: float
    log_loss_after: float


def fit_temperature(labels: Sequence[float], probabilities: Sequence[float]) -> TemperatureFit:
    """The T that minimises the log loss of ``apply_temperature(probabilities, T)`` against ``labels``
    (1 FAKE, 0 REAL), searched on log T within ``LOG_TEMPERATURE_BOUNDS``. ValueError when the videos
    are not of both classes (a fit on one class would only push every score to that side)."""
    y = np.asarray(labels, dtype=np.float64) > 0.5
    p = np.asarray(probabilities, dtype=np.float64)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"need one probability per label, got {len(p)} probabilities for {len(y)} labels")
    if y.all() or not y.any():
        raise ValueError(f"a temperature needs fake and real videos; these {len(y)} videos are all "
                         f"{'FAKE' if y.all() else 'REAL'}")
    before = log_loss(y, p)
    found = minimize_scalar(lambda log_t: log_loss(y, apply_temperature(p, math.exp(log_t))),
                            bounds=LOG_TEMPERATURE_BOUNDS, method="bounded", options={"xatol": 1e-6})
    temperature, after = math.exp(float(found.x)), float(found.fun)
    if not after < before:  # the scores were as good as the range allows: leave them as they are
        temperature, after = 1.0, before
    return TemperatureFit(temperature, len(y), before, after)
