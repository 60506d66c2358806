"""Scores shared by validation (training), submission scoring and the evaluation protocol (prediction).

Every metric is scikit-learn's; this module only fixes the conventions: probabilities clipped to
[1e-15, 1 - 1e-15] as the DFDC leaderboard did, NaN for a metric that a single class cannot define
(AUC, AP, EER) and for an empty set. (A bootstrap resample's AUC and AP are scikit-learn's with the
resample's counts as sample weights, computed here for a batch of resamples at once.)

Confidence intervals: the bootstrap resamples the videos with replacement, each class to its own size
(``scipy.stats.bootstrap`` with the fakes and the reals as two unpaired samples, so that every resample
holds both classes in the measured proportion), from a fixed seed; the interval is the central 95% of
the metric over the resamples (percentile bootstrap). A class with fewer than ``MIN_VIDEOS_PER_CLASS`` videos gives no
interval: resampling one video only repeats it. Reliability: the videos in equal-width probability bins,
each bin's mean prediction against its observed fraction of fakes (scikit-learn's ``calibration_curve``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LOG_LOSS_EPS = 1e-15  # the competition clipped probabilities to [eps, 1 - eps]

# The verdict a score gives (docs/prediction.md, "Decision threshold"): FAKE above DECISION_THRESHOLD, REAL
# at or below it (the accuracy, the report's verdicts and its red "wrong side" scores all use it), and
# "uncertain" inside UNCERTAIN_BAND: a calibrated score there says at least 3 in 10 such videos are of the
# other class. The neutral fallback answer 0.5 is always uncertain.
DECISION_THRESHOLD = 0.5
UNCERTAIN_BAND = (0.3, 0.7)
VERDICTS = ("FAKE", "REAL", "uncertain")


def verdict(probability: float) -> str:
    """``"uncertain"`` inside ``UNCERTAIN_BAND`` (ends included), else ``"FAKE"`` above
    ``DECISION_THRESHOLD`` and ``"REAL"`` at or below it."""
    low, high = UNCERTAIN_BAND
    if low <= probability <= high:
        return "uncertain"
    return "FAKE" if probability > DECISION_THRESHOLD else "REAL"


def _arrays(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(labels, dtype=np.float64).ravel(), np.asarray(probs, dtype=np.float64).ravel()


def _two_classes(y: np.ndarray) -> bool:
    return y.size > 0 and len(np.unique(y > 0.5)) == 2


def log_loss(labels: Sequence[float], probs: Sequence[float], eps: float = LOG_LOSS_EPS) -> float:
    """Binary log loss (mean), probabilities clipped like the DFDC leaderboard."""
    from sklearn.metrics import log_loss as sk_log_loss

    y, p = _arrays(labels, probs)
    if y.size == 0:
        return float("nan")
    return float(sk_log_loss(y > 0.5, np.clip(p, eps, 1 - eps), labels=[False, True]))


def video_log_loss(label: float, probability: float) -> float:
    """The log loss of one video's answer."""
    return log_loss([label], [probability])


def auc(labels: Sequence[float], probs: Sequence[float]) -> float:
    """ROC AUC; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, p = _arrays(labels, probs)
    return float(roc_auc_score(y > 0.5, p)) if _two_classes(y) else float("nan")


def average_precision(labels: Sequence[float], probs: Sequence[float]) -> float:
    """Average precision with FAKE as the positive class; NaN when only one class is present."""
    from sklearn.metrics import average_precision_score

    y, p = _arrays(labels, probs)
    return float(average_precision_score(y > 0.5, p)) if _two_classes(y) else float("nan")


def equal_error_rate(labels: Sequence[float], probs: Sequence[float]) -> float:
    """The rate where false positives and false negatives are equal, from scikit-learn's ROC curve
    (the mean of the two at the threshold where they are closest); NaN with one class."""
    from sklearn.metrics import roc_curve

    y, p = _arrays(labels, probs)
    if not _two_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y > 0.5, p)
    fnr = 1 - tpr
    best = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[best] + fnr[best]) / 2)


def accuracy_at_half(labels: Sequence[float], probs: Sequence[float]) -> float:
    from sklearn.metrics import accuracy_score

    y, p = _arrays(labels, probs)
    return float(accuracy_score(y > 0.5, p > DECISION_THRESHOLD)) if y.size else float("nan")


def video_scores(labels: Sequence[float], probs: Sequence[float]) -> dict[str, float]:
    """Log loss on fakes, on reals, their mean (the winner's model-selection score), overall log loss,
    AUC, average precision, equal error rate and accuracy at 0.5."""
    y, p = _arrays(labels, probs)
    fake_loss = log_loss(y[y > 0.5], p[y > 0.5])
    real_loss = log_loss(y[y <= 0.5], p[y <= 0.5])
    return {
        "log_loss": log_loss(y, p),
        "fake_log_loss": fake_loss,
        "real_log_loss": real_loss,
        "balanced_log_loss": float(np.nanmean([fake_loss, real_loss])) if y.size else float("nan"),
        "auc": auc(y, p),
        "average_precision": average_precision(y, p),
        "eer": equal_error_rate(y, p),
        "accuracy": accuracy_at_half(y, p),
        "n_videos": int(y.size),
    }


# ---- confidence intervals -------------------------------------------------------------------------------

MIN_VIDEOS_PER_CLASS = 2  # fewer videos of a class: "n too small", no interval
RESAMPLES_PER_BATCH = 100  # resamples scored at once (memory: batch x faces weights)


@dataclass(frozen=True)
class Bootstrap:
    """How confidence intervals are computed: ``resamples`` stratified bootstrap resamples of the videos
    drawn from ``seed`` (fixed by default, so that a rerun gives the same interval), a central ``level``
    interval. ``resamples`` 0: no intervals."""

    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def record(self) -> dict:
        """What the metrics file says about its intervals."""
        return {"method": "percentile bootstrap", "resampled": "videos, stratified by label",
                "resamples": self.resamples, "seed": self.seed, "level": self.level,
                "min_videos_per_class": MIN_VIDEOS_PER_CLASS}


def enough_per_class(labels: Sequence[float]) -> bool:
    """Whether both classes hold ``MIN_VIDEOS_PER_CLASS`` videos (else no interval: "n too small")."""
    y = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    return min(int(y.sum()), int((~y).sum())) >= MIN_VIDEOS_PER_CLASS


def bootstrap_distributions(labels: Sequence[float], statistics: Callable[[np.ndarray], dict[str, np.ndarray]],
                            bootstrap: Bootstrap = Bootstrap()) -> dict[str, np.ndarray]:
    """Each number ``statistics`` computes, over ``bootstrap.resamples`` resamples of the videos: the fakes
    and the reals each drawn with replacement to their own size (``scipy.stats.bootstrap`` with the two
    classes as unpaired samples), seeded with ``bootstrap.seed``. ``statistics`` takes a batch of
    resamples as counts (``counts[r, i]``: how many times resample ``r`` drew video ``i``) and returns
    each number per resample."""
    from scipy.stats import DegenerateDataWarning
    from scipy.stats import bootstrap as scipy_bootstrap

    y = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    names: list[str] = []

    def stacked(fake_draws: np.ndarray, real_draws: np.ndarray, axis: int = -1) -> np.ndarray:
        draws = np.concatenate([fake_draws, real_draws], axis=-1).astype(np.int64)
        batch = draws.shape[0]
        rows = np.arange(batch)[:, None] * y.size
        counts = np.bincount((rows + draws).ravel(), minlength=batch * y.size).reshape(batch, y.size)
        numbers = statistics(counts)
        names[:] = list(numbers)
        return np.stack([numbers[name] for name in names])

    with warnings.catch_warnings():
        # scipy's own interval is not used (``bootstrap_intervals`` leaves out the resamples where a number
        # is undefined, e.g. a face AUC of faceless fakes); its warning about such NaNs would only confuse
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = scipy_bootstrap((np.flatnonzero(y), np.flatnonzero(~y)), stacked, n_resamples=bootstrap.resamples,
                                 batch=RESAMPLES_PER_BATCH, vectorized=True, paired=False, method="percentile",
                                 rng=bootstrap.seed)
    return dict(zip(names, result.bootstrap_distribution))


def bootstrap_intervals(labels: Sequence[float], statistics: Callable[[np.ndarray], dict[str, np.ndarray]],
                        bootstrap: Bootstrap = Bootstrap()) -> dict[str, list[float] | None] | None:
    """``{name: [low, high]}``: the central ``bootstrap.level`` interval of each number ``statistics``
    computes over the resamples (``bootstrap_distributions``). A number that is not finite in a resample
    (a face AUC when the drawn fakes have no face) leaves that resample out; None for a number never
    finite. None instead of the dict when a class has too few videos (``enough_per_class``)."""
    if not enough_per_class(labels) or bootstrap.resamples < 1:
        return None
    tail_pct = 100 * (1 - bootstrap.level) / 2
    intervals: dict[str, list[float] | None] = {}
    for name, values in bootstrap_distributions(labels, statistics, bootstrap).items():
        values = values[np.isfinite(values)]
        intervals[name] = ([float(v) for v in np.percentile(values, [tail_pct, 100 - tail_pct])]
                           if values.size else None)
    return intervals


# A resample's AUC and AP are scikit-learn's with the resample's counts as sample weights; computed here
# for a whole batch at once from the same cumulative counts scikit-learn's curves use (one scikit-learn
# call per resample costs milliseconds of input checks: a thousand resamples per row would take seconds).
# tests/core/test_metrics.py checks them against roc_auc_score and average_precision_score.


def _weighted_curve(labels: Sequence[float], probs: Sequence[float], weights: np.ndarray):
    """Weighted true and false positives above each distinct score, highest first: (tps, fps), one row
    per row of ``weights``."""
    y, p = _arrays(labels, probs)
    order = np.argsort(-p, kind="mergesort")
    # the last row of each distinct score (none without rows: a face AUC where no video has a face)
    ends = np.r_[np.flatnonzero(np.diff(p[order])), p.size - 1] if p.size else np.zeros(0, dtype=int)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))[:, order]
    fake = y[order] > 0.5
    return np.cumsum(w * fake, axis=1)[:, ends], np.cumsum(w * ~fake, axis=1)[:, ends]


def weighted_auc(labels: Sequence[float], probs: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (NaN where a class has no weight)."""
    tps, fps = _weighted_curve(labels, probs, weights)
    if tps.shape[1] == 0:
        return np.full(len(tps), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = tps / tps[:, -1:], fps / fps[:, -1:]
    start = np.zeros((len(tps), 1))
    return np.trapezoid(np.hstack([start, tpr]), np.hstack([start, fpr]), axis=1)


def weighted_average_precision(labels: Sequence[float], probs: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """Average precision (FAKE positive) for each row of ``weights``: the precision at each score times the
    recall it adds (NaN where no fake has weight)."""
    tps, fps = _weighted_curve(labels, probs, weights)
    if tps.shape[1] == 0:
        return np.full(len(tps), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tps / tps[:, -1:]
        precision = tps / (tps + fps)
    added = np.diff(recall, axis=1, prepend=0.0)
    average = np.where(added > 0, added * precision, 0.0).sum(axis=1)
    average[np.isnan(recall[:, -1])] = np.nan
    return average


def video_log_losses(labels: Sequence[float], probs: Sequence[float], eps: float = LOG_LOSS_EPS) -> np.ndarray:
    """Each video's log loss (probabilities clipped like ``log_loss``): their mean is ``log_loss``, so a
    resample's log loss is their mean weighted by its counts."""
    y, p = _arrays(labels, probs)
    p = np.clip(p, eps, 1 - eps)
    return -np.where(y > 0.5, np.log(p), np.log1p(-p))


def video_score_statistics(labels: Sequence[float], probs: Sequence[float]) -> Callable[[np.ndarray], dict]:
    """The video-level numbers that get an interval (AUC, average precision, the four log losses), for a
    batch of resamples given as counts (``bootstrap_intervals``)."""
    y, p = _arrays(labels, probs)
    fake = y > 0.5
    losses = video_log_losses(y, p)

    def statistics(counts: np.ndarray) -> dict[str, np.ndarray]:
        fake_loss = counts[:, fake] @ losses[fake] / counts[:, fake].sum(axis=1)
        real_loss = counts[:, ~fake] @ losses[~fake] / counts[:, ~fake].sum(axis=1)
        return {"auc": weighted_auc(y, p, counts), "average_precision": weighted_average_precision(y, p, counts),
                "log_loss": counts @ losses / counts.sum(axis=1), "fake_log_loss": fake_loss,
                "real_log_loss": real_loss, "balanced_log_loss": (fake_loss + real_loss) / 2}

    return statistics


# ---- reliability ----------------------------------------------------------------------------------------

RELIABILITY_BINS = 10


def reliability_bins(labels: Sequence[float], probs: Sequence[float], n_bins: int = RELIABILITY_BINS) -> list[dict]:
    """The videos in ``n_bins`` equal-width bins of predicted probability: per bin its edges, how many
    videos, their mean prediction and the fraction that is fake (None for both in an empty bin). The
    fractions are scikit-learn's ``calibration_curve``; the counts use its binning."""
    from sklearn.calibration import calibration_curve

    y, p = _arrays(labels, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins) if y.size else np.zeros(n_bins, int)
    observed, predicted = (calibration_curve(y > 0.5, p, n_bins=n_bins) if y.size else ([], []))
    filled = iter(zip(observed, predicted))
    bins = []
    for i, count in enumerate(counts):
        fraction_fake, mean_prediction = next(filled) if count else (None, None)
        bins.append({"low": float(edges[i]), "high": float(edges[i + 1]), "n_videos": int(count),
                     "mean_prediction": None if mean_prediction is None else float(mean_prediction),
                     "fraction_fake": None if fraction_fake is None else float(fraction_fake)})
    return bins
