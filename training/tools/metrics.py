"""Scores shared by validation (training) and submission scoring (prediction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOG_LOSS_EPS = 1e-15  # the competition clipped probabilities to [eps, 1 - eps]


def log_loss(labels: Sequence[float], probs: Sequence[float], eps: float = LOG_LOSS_EPS) -> float:
    """Binary log loss (mean), probabilities clipped like the DFDC leaderboard."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    if y.size == 0:
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def video_log_loss(label: float, probability: float) -> float:
    """The log loss of one video's answer."""
    return log_loss([label], [probability])


def auc(labels: Sequence[float], probs: Sequence[float]) -> float:
    """ROC AUC; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    if y.size == 0 or len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(probs, dtype=np.float64)))


def video_scores(labels: Sequence[float], probs: Sequence[float]) -> dict[str, float]:
    """Log loss on fakes, on reals, their mean (the winner's model-selection score), overall log loss,
    AUC and accuracy at 0.5."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    fake_loss = log_loss(y[y > 0.5], p[y > 0.5])
    real_loss = log_loss(y[y <= 0.5], p[y <= 0.5])
    return {
        "log_loss": log_loss(y, p),
        "fake_log_loss": fake_loss,
        "real_log_loss": real_loss,
        "balanced_log_loss": float(np.nanmean([fake_loss, real_loss])) if y.size else float("nan"),
        "auc": auc(y, p),
        "accuracy": float(np.mean((p > 0.5) == (y > 0.5))) if y.size else float("nan"),
        "n_videos": int(y.size),
    }
