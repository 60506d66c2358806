"""The aggregation rules over face scores and the combination of models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prediction.aggregation import combine_models, confident_strategy, max_strategy, mean_strategy

# ---- the winner's `confident` rule on crafted score arrays ---------------------------------------------


@pytest.mark.parametrize("scores, expected", [
    # fake branch: 12 of 20 faces above 0.8 (12 > 11 and 12 > 20 / 2.5 = 8): the mean of those
    ([0.9] * 6 + [0.95] * 6 + [0.3] * 8, 0.925),
    # exactly 11 confident fakes is not enough (needs more than 11): mean of all
    ([0.9] * 11 + [0.5], (0.9 * 11 + 0.5) / 12),
    # 12 of 30 is exactly 30 / 2.5, not more: mean of all
    ([0.9] * 12 + [0.5] * 18, (0.9 * 12 + 0.5 * 18) / 30),
    # 13 of 30 is more than 30 / 2.5: the mean of those
    ([0.9] * 13 + [0.5] * 17, 0.9),
    # a score of exactly 0.8 is not above the threshold: 11 above, so mean of all
    ([0.9] * 11 + [0.8] * 2, (0.9 * 11 + 0.8 * 2) / 13),
    # real branch: 19 of 20 below 0.2 (19 > 0.9 * 20 = 18): the mean of those
    ([0.1] * 19 + [0.9], 0.1),
    # exactly 18 of 20 below 0.2 is not more than 0.9 n: mean of all
    ([0.1] * 18 + [0.6] * 2, (0.1 * 18 + 0.6 * 2) / 20),
    # a score of exactly 0.2 is not below: mean of all
    ([0.1] * 9 + [0.2], (0.1 * 9 + 0.2) / 10),
    # few faces, all below 0.2 (real branch has no minimum count)
    ([0.05, 0.15], 0.1),
    # few faces, all confident fakes (fake branch needs more than 11): mean of all
    ([0.99] * 5 + [0.85] * 5, 0.92),
    # neither: the mean
    ([0.3, 0.6, 0.9], 0.6),
])
def test_confident_strategy_each_branch_and_boundary(scores, expected):
    assert confident_strategy(scores) == pytest.approx(expected, abs=1e-12)
    assert confident_strategy(np.random.default_rng(0).permutation(scores)) == pytest.approx(expected, abs=1e-12)


def test_mean_max_and_model_combination():
    assert mean_strategy([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    assert max_strategy([0.2, 0.4, 0.9]) == pytest.approx(0.9)
    assert combine_models([0.9, 0.5], "mean") == pytest.approx(0.7)
    # normalised geometric mean = mean of log-odds: symmetric for REAL and FAKE
    assert combine_models([0.9, 0.1], "geometric") == pytest.approx(0.5)
    assert combine_models([0.8, 0.8], "geometric") == pytest.approx(0.8)
    odds = math.sqrt((0.9 / 0.1) * (0.5 / 0.5))
    assert combine_models([0.9, 0.5], "geometric") == pytest.approx(odds / (1 + odds))
    with pytest.raises(ValueError, match="geometric"):
        combine_models([0.5], "median")
    with pytest.raises(ValueError):
        confident_strategy([])
