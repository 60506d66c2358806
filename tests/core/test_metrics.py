"""Bootstrap confidence intervals and reliability bins: scikit-learn's numbers on every resample, seeded,
stratified by label, narrowing with more videos."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from core import metrics
from core.metrics import Bootstrap, bootstrap_distributions, bootstrap_intervals, video_score_statistics


def _labelled_numbers(seed: int, n: int, separation: float = 0.4):
    """Labels and informative probabilities with ties (rounded to 0.01, within [0.01, 0.99]: a score of 0
    or 1 on the wrong side would dominate every log loss)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.5 + (y - 0.5) * separation + rng.normal(0, 0.25, n), 0.01, 0.99), 2)
    return y, p


def _video_intervals(y, p, bootstrap: Bootstrap = Bootstrap()) -> dict:
    return bootstrap_intervals(y, video_score_statistics(y, p), bootstrap)


def _drawn_counts(y, bootstrap: Bootstrap) -> np.ndarray:
    """The counts of every resample, as ``bootstrap_distributions`` hands them to its statistics."""
    seen = []

    def statistics(counts):
        seen.append(counts.copy())
        return {"n": counts.sum(axis=1).astype(float)}

    bootstrap_distributions(y, statistics, bootstrap)
    return np.concatenate(seen)


def test_every_resample_is_stratified_by_label_and_scored_like_scikit_learn():
    y, p = _labelled_numbers(0, 60)
    bootstrap = Bootstrap(resamples=40, seed=3)
    counts = _drawn_counts(y, bootstrap)
    assert counts.shape == (40, 60)
    # each class drawn to its own size: every resample holds as many fakes and reals as the videos
    assert (counts[:, y == 1].sum(axis=1) == (y == 1).sum()).all()
    assert (counts[:, y == 0].sum(axis=1) == (y == 0).sum()).all()
    assert len({row.tobytes() for row in counts}) == 40  # 40 different resamples
    numbers = bootstrap_distributions(y, video_score_statistics(y, p), bootstrap)
    for r, row in enumerate(counts):
        # the resample as a list of videos (each drawn video repeated as often as it was drawn)
        ry, rp = np.repeat(y, row), np.repeat(p, row)
        clipped = np.clip(rp, 1e-15, 1 - 1e-15)
        assert numbers["auc"][r] == pytest.approx(roc_auc_score(ry, rp), abs=1e-12)
        assert numbers["average_precision"][r] == pytest.approx(average_precision_score(ry, rp), abs=1e-12)
        assert numbers["log_loss"][r] == pytest.approx(log_loss(ry, clipped), abs=1e-12)
        fake_loss = log_loss(ry[ry == 1], clipped[ry == 1], labels=[0, 1])
        real_loss = log_loss(ry[ry == 0], clipped[ry == 0], labels=[0, 1])
        assert numbers["fake_log_loss"][r] == pytest.approx(fake_loss, abs=1e-12)
        assert numbers["real_log_loss"][r] == pytest.approx(real_loss, abs=1e-12)
        assert numbers["balanced_log_loss"][r] == pytest.approx((fake_loss + real_loss) / 2, abs=1e-12)


def test_weighted_scores_equal_scikit_learn_with_sample_weights():
    y, p = _labelled_numbers(1, 30)
    weights = np.random.default_rng(0).integers(0, 4, (5, 30)).astype(float)
    weights[:, np.argmax(y == 1)] += 1  # every weighting keeps a fake and a real
    weights[:, np.argmax(y == 0)] += 1
    for row, auc, ap in zip(weights, metrics.weighted_auc(y, p, weights),
                            metrics.weighted_average_precision(y, p, weights)):
        assert auc == pytest.approx(roc_auc_score(y, p, sample_weight=row), abs=1e-12)
        assert ap == pytest.approx(average_precision_score(y, p, sample_weight=row), abs=1e-12)
    # a weighting that leaves out every fake has no AUC and no AP (the reals only)
    reals_only = (y == 0).astype(float)[None, :]
    assert np.isnan(metrics.weighted_auc(y, p, reals_only)).all()
    assert np.isnan(metrics.weighted_average_precision(y, p, reals_only)).all()
    assert metrics.video_log_losses(y, p).mean() == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def test_weighted_scores_of_no_rows_are_nan():
    # a face AUC where no video has a face (every one fell back): no scores, no curve
    no_weights = np.zeros((3, 0))
    assert np.isnan(metrics.weighted_auc([], [], no_weights)).all()
    assert np.isnan(metrics.weighted_average_precision([], [], no_weights)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_interval_holds_its_point_estimate(seed):
    y, p = _labelled_numbers(seed, 80)
    point = metrics.video_scores(y, p)
    intervals = _video_intervals(y, p)
    assert set(intervals) == {"auc", "average_precision", "log_loss", "fake_log_loss", "real_log_loss",
                              "balanced_log_loss"}
    for name, (low, high) in intervals.items():
        assert low <= point[name] <= high, (name, low, point[name], high)
        assert low < high, name  # 80 videos of overlapping scores: a real spread


def test_intervals_narrow_with_more_videos():
    small, large = _labelled_numbers(4, 40), _labelled_numbers(4, 640)
    narrow, wide = _video_intervals(*large), _video_intervals(*small)
    for name in ("auc", "average_precision", "log_loss", "balanced_log_loss"):
        # 16 times the videos: about a quarter of the width (1 / sqrt(16)); at most half
        assert narrow[name][1] - narrow[name][0] < 0.5 * (wide[name][1] - wide[name][0]), name


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    y, p = _labelled_numbers(5, 50)
    first = _video_intervals(y, p, Bootstrap(seed=7))
    assert _video_intervals(y, p, Bootstrap(seed=7)) == first
    other = _video_intervals(y, p, Bootstrap(seed=8))
    assert other != first
    assert all(other[k] != first[k] for k in ("auc", "log_loss"))
    # the default seed is fixed: a rerun of the same evaluation gives the same numbers
    assert _video_intervals(y, p) == _video_intervals(y, p)
    assert Bootstrap().record() == {"method": "percentile bootstrap", "resampled": "videos, stratified by label",
                                    "resamples": 1000, "seed": 0, "level": 0.95, "min_videos_per_class": 2}


def test_a_perfect_separation_has_an_auc_interval_of_one():
    y = np.array([0] * 5 + [1] * 5)
    p = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.8, 0.9])
    intervals = _video_intervals(y, p)
    assert intervals["auc"] == [1.0, 1.0] and intervals["average_precision"] == [1.0, 1.0]
    # the fakes' log loss lies between the best and the worst fake's own loss
    losses = metrics.video_log_losses(y, p)[y == 1]
    assert losses.min() <= intervals["fake_log_loss"][0] < intervals["fake_log_loss"][1] <= losses.max()


def test_a_class_of_one_video_is_n_too_small():
    assert _video_intervals([0, 1, 1, 1], [0.2, 0.7, 0.8, 0.4]) is None
    assert _video_intervals([1, 1, 1], [0.2, 0.7, 0.8]) is None
    assert not metrics.enough_per_class([0, 1, 1]) and metrics.enough_per_class([0, 0, 1, 1])
    assert _video_intervals([0, 0, 1, 1], [0.2, 0.3, 0.6, 0.4]) is not None
    assert _video_intervals([0, 0, 1, 1], [0.2, 0.3, 0.6, 0.4], Bootstrap(resamples=0)) is None


def test_reliability_bins_are_scikit_learns_calibration_curve_with_counts():
    y, p = _labelled_numbers(6, 200)
    bins = metrics.reliability_bins(y, p, n_bins=10)
    assert [b["low"] for b in bins] == pytest.approx(np.linspace(0, 0.9, 10))
    assert sum(b["n_videos"] for b in bins) == 200
    filled = [b for b in bins if b["n_videos"]]
    observed, predicted = calibration_curve(y, p, n_bins=10)
    assert [b["fraction_fake"] for b in filled] == pytest.approx(observed)
    assert [b["mean_prediction"] for b in filled] == pytest.approx(predicted)
    for b in filled:  # scikit-learn's bins: scores in (low, high], the first bin also holds 0
        inside = ((p > b["low"]) | (p == 0)) & (p <= b["high"]) if b["low"] == 0 else (p > b["low"]) & (p <= b["high"])
        assert b["n_videos"] == inside.sum()
        assert b["fraction_fake"] == pytest.approx(y[inside].mean())
    empty = metrics.reliability_bins([1, 0], [0.95, 0.05])
    assert [b["n_videos"] for b in empty] == [1] + [0] * 8 + [1]
    assert empty[4]["fraction_fake"] is None and empty[0]["fraction_fake"] == 0 and empty[9]["fraction_fake"] == 1
