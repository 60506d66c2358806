"""Scores shared by validation (training), submission scoring and the evaluation protocol (prediction).

Every metric is scikit-learn's; this module only fixes the conventions: probabilities clipped to
[1e-15, 1 - 1e-15] as the DFDC leaderboard did, NaN for a metric that a single class cannot define
(AUC, AP, EER) and for an empty set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOG_LOSS_EPS = 1e-15  # the competition clipped probabilities to [eps, 1 - eps]


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
    return float(accuracy_score(y > 0.5, p > 0.5)) if y.size else float("nan")


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
