"""How one score is made of many: the rules over the face scores of one video (``confident``, the
DFDC winner's; ``mean``; ``max``) and the combination of the models' video scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# ---- aggregation over the faces of one video (per model) -----------------------------------------------


def confident_strategy(scores: Sequence[float], threshold: float = 0.8) -> float:
    """The DFDC winner's rule over the face scores of one video.

    With ``n`` scores: if more than 11 faces AND more than ``n / 2.5`` of them score above
    ``threshold``, the mean of those; else if more than ``0.9 n`` score below 0.2, the mean of those;
    else the mean of all. (The winner wrote ``n // 2.5``; for an integer count ``k``,
    ``k > n // 2.5`` and ``k > n / 2.5`` are the same test.)
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n = scores.size
    if n == 0:
        raise ValueError("confident_strategy needs at least one face score")
    confident_fake = scores > threshold
    fakes = int(np.count_nonzero(confident_fake))
    if fakes > 11 and fakes > n / 2.5:
        return float(scores[confident_fake].mean())
    confident_real = scores < 0.2
    if np.count_nonzero(confident_real) > 0.9 * n:
        return float(scores[confident_real].mean())
    return float(scores.mean())


def describe_strategy(scores: Sequence[float], strategy: str = "confident", threshold: float = 0.8) -> str:
    """In words, which part of ``strategy``'s rule made its answer for these face scores (for reports)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n = scores.size
    if strategy == "mean":
        return f"the mean of the {n} face scores"
    if strategy == "max":
        return f"the highest of the {n} face scores"
    fakes = int(np.count_nonzero(scores > threshold))
    if fakes > 11 and fakes > n / 2.5:
        return (f"{fakes} of {n} faces score above {threshold} (more than 11 and more than n / 2.5): the mean of "
                f"those {fakes}")
    reals = int(np.count_nonzero(scores < 0.2))
    if reals > 0.9 * n:
        return f"{reals} of {n} faces score below 0.2 (more than 90%): the mean of those {reals}"
    return (f"neither {fakes} faces above {threshold} (needs more than 11 and n / 2.5) nor {reals} below 0.2 "
            f"(needs more than 90%): the mean of all {n}")


def mean_strategy(scores: Sequence[float]) -> float:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("mean_strategy needs at least one face score")
    return float(scores.mean())


def max_strategy(scores: Sequence[float]) -> float:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("max_strategy needs at least one face score")
    return float(scores.max())


STRATEGIES: dict[str, Callable[[Sequence[float]], float]] = {
    "confident": confident_strategy,
    "mean": mean_strategy,
    "max": max_strategy,
}


def combine_models(probabilities: Sequence[float], method: str = "mean") -> float:
    """One probability from the models' video probabilities.

    ``mean``: arithmetic mean (the winner's). ``geometric``: the normalised geometric mean,
    ``prod(p)^(1/k) / (prod(p)^(1/k) + prod(1-p)^(1/k))``, i.e. the mean of the models' log-odds;
    unlike a plain geometric mean of ``p`` it treats REAL and FAKE alike.
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("combine_models needs at least one model probability")
    if method == "mean":
        return float(p.mean())
    if method == "geometric":
        eps = 1e-7  # keeps the log-odds finite for saturated models
        p = np.clip(p, eps, 1 - eps)
        mean_logit = float(np.mean(np.log(p) - np.log1p(-p)))
        return float(1.0 / (1.0 + np.exp(-mean_logit)))
    raise ValueError(f"unknown model combination {method!r}; use 'mean' or 'geometric'")
