"""Temperature scaling: a known over-confidence is undone, the order of the scores (AUC) is kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from core.calibration import LOG_TEMPERATURE_BOUNDS, apply_temperature, fit_temperature
from core.metrics import auc, log_loss


def _scores(overconfidence: float, n: int = 4000, seed: int = 0):
    """Labels drawn from calibrated probabilities sigmoid(z), and scores sigmoid(overconfidence * z): their
    temperature is ``overconfidence``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < expit(z)).astype(float)
    return labels, expit(z * overconfidence)


@pytest.mark.parametrize("overconfidence", [2.5, 0.4])  # over-confident scores, then timid ones
def test_the_fitted_temperature_undoes_a_known_miscalibration(overconfidence):
    labels, scores = _scores(overconfidence)
    fit = fit_temperature(labels, scores)
    assert fit.temperature == pytest.approx(overconfidence, rel=0.1)
    assert fit.videos == len(labels) and fit.log_loss_after < fit.log_loss_before
    assert fit.log_loss_before == pytest.approx(log_loss(labels, scores))
    calibrated = apply_temperature(scores, fit.temperature)
    assert log_loss(labels, calibrated) == pytest.approx(fit.log_loss_after)
    assert auc(labels, calibrated) == auc(labels, scores)


def test_calibrated_scores_keep_a_temperature_near_one():
    labels, scores = _scores(1.0, seed=1)
    assert fit_temperature(labels, scores).temperature == pytest.approx(1.0, abs=0.08)


def test_the_temperature_stays_in_its_range_and_scores_at_0_and_1_are_clipped():
    labels = np.array([1, 0, 1, 0], dtype=float)
    wrong = np.array([0.0, 1.0, 0.001, 0.999])  # confidently wrong: the fit pulls them to 0.5
    fit = fit_temperature(labels, wrong)
    assert np.exp(LOG_TEMPERATURE_BOUNDS[0]) <= fit.temperature <= np.exp(LOG_TEMPERATURE_BOUNDS[1])
    assert fit.temperature > 10 and fit.log_loss_after < fit.log_loss_before
    assert np.isfinite(apply_temperature(wrong, fit.temperature)).all()


def test_one_class_and_bad_temperatures_are_errors():
    with pytest.raises(ValueError, match="all FAKE"):
        fit_temperature([1, 1, 1], [0.6, 0.7, 0.9])
    with pytest.raises(ValueError, match="one probability per label"):
        fit_temperature([1, 0], [0.5])
    for temperature in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            apply_temperature([0.5], temperature)
