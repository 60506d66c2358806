"""How one score is made of many, as three registries chosen by the predictor's options:

* :data:`STRATEGIES` (``strategy``): the rule over the face scores of one video, per model
  (``confident``, the DFDC winner's; ``mean``; ``max``);
* :data:`COMBINATIONS` (``combine``): the models' probabilities -> one (``mean``, ``geometric``);
* :data:`VIDEO_RULES` (``aggregate``): which faces a video's score is made of (``winner``: all of them
  pooled; ``per-person``: each person's faces, the most fake person's score).

Each entry carries its constants once and says in words what it does (the report's explanation and
a video page's "why this score" are made from the entry, not written again elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.registry import Registry

# ---- aggregation over the faces of one video (per model) -----------------------------------------------


class Strategy(Protocol):
    """A rule over the face scores of one video: ``strategy(scores) -> score``."""

    rule: str  # the rule in words ("the mean"), for the report

    def __call__(self, scores: Sequence[float]) -> float: ...

    def explain(self, scores: Sequence[float]) -> str:
        """In words, which part of the rule made its answer for these scores."""
        ...


STRATEGIES: Registry[Strategy] = Registry("aggregation strategy")


def checked_scores(scores: Sequence[float], rule: str) -> np.ndarray:
    """One video's face scores as float64, a ValueError naming ``rule`` when there are none."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError(f"{rule} needs at least one face score")
    return scores


@dataclass(frozen=True)
class ConfidentRule:
    """The DFDC winner's rule over the face scores of one video.

    With ``n`` scores: if more than ``min_fake_faces`` faces AND more than ``n / fake_share_divisor``
    of them score above ``fake_threshold``, the mean of those; else if more than ``real_share * n``
    score below ``real_threshold``, the mean of those; else the mean of all. (The winner wrote
    ``n // 2.5``; for an integer count ``k``, ``k > n // 2.5`` and ``k > n / 2.5`` are the same test.)
    """

    fake_threshold: float = 0.8
    min_fake_faces: int = 11
    fake_share_divisor: float = 2.5
    real_threshold: float = 0.2
    real_share: float = 0.9

    @property
    def rule(self) -> str:
        return (f"the DFDC winner's confident rule (if more than {self.min_fake_faces} faces and more than "
                f"{self._fake_share} of them score above {self.fake_threshold:g}, the mean of those; else if more "
                f"than {self._real_share} score below {self.real_threshold:g}, the mean of those; else the mean "
                f"of all)")

    @property
    def _fake_share(self) -> str:
        return f"n / {self.fake_share_divisor:g}"

    @property
    def _real_share(self) -> str:
        return f"{self.real_share:.0%}"

    def _counts(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """(confident fakes, confident reals, whether the fake branch applies, whether the real one does)."""
        fakes = scores > self.fake_threshold
        reals = scores < self.real_threshold
        n_fakes = int(np.count_nonzero(fakes))
        fake_branch = n_fakes > self.min_fake_faces and n_fakes > scores.size / self.fake_share_divisor
        real_branch = np.count_nonzero(reals) > self.real_share * scores.size
        return fakes, reals, fake_branch, bool(real_branch)

    def __call__(self, scores: Sequence[float]) -> float:
        scores = checked_scores(scores, "confident_strategy")
        fakes, reals, fake_branch, real_branch = self._counts(scores)
        if fake_branch:
            return float(scores[fakes].mean())
        if real_branch:
            return float(scores[reals].mean())
        return float(scores.mean())

    def explain(self, scores: Sequence[float]) -> str:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        n = scores.size
        fakes, reals, fake_branch, real_branch = self._counts(scores)
        n_fakes, n_reals = int(np.count_nonzero(fakes)), int(np.count_nonzero(reals))
        if fake_branch:
            return (f"{n_fakes} of {n} faces score above {self.fake_threshold:g} (more than {self.min_fake_faces} "
                    f"and more than {self._fake_share}): the mean of those {n_fakes}")
        if real_branch:
            return (f"{n_reals} of {n} faces score below {self.real_threshold:g} (more than {self._real_share}): "
                    f"the mean of those {n_reals}")
        return (f"neither {n_fakes} faces above {self.fake_threshold:g} (needs more than {self.min_fake_faces} and "
                f"{self._fake_share}) nor {n_reals} below {self.real_threshold:g} (needs more than "
                f"{self._real_share}): the mean of all {n}")


@dataclass(frozen=True)
class Reduction:
    """One reduction over all the face scores (``numpy`` function), said in words."""

    function: Callable[[np.ndarray], float]
    rule: str  # "the mean"
    of_scores: str  # "the mean of the {n} face scores"
    name: str

    def __call__(self, scores: Sequence[float]) -> float:
        return float(self.function(checked_scores(scores, f"{self.name}_strategy")))

    def explain(self, scores: Sequence[float]) -> str:
        return self.of_scores.format(n=np.asarray(scores).size)


CONFIDENT = STRATEGIES.register("confident", ConfidentRule())
STRATEGIES.register("mean", Reduction(np.mean, "the mean", "the mean of the {n} face scores", "mean"))
STRATEGIES.register("max", Reduction(np.max, "the highest score", "the highest of the {n} face scores", "max"))


def confident_strategy(scores: Sequence[float], threshold: float = ConfidentRule.fake_threshold) -> float:
    """The DFDC winner's rule (:class:`ConfidentRule`) with its fake threshold set to ``threshold``."""
    rule = CONFIDENT if threshold == CONFIDENT.fake_threshold else ConfidentRule(fake_threshold=threshold)
    return rule(scores)


def mean_strategy(scores: Sequence[float]) -> float:
    return STRATEGIES.get("mean")(scores)


def max_strategy(scores: Sequence[float]) -> float:
    return STRATEGIES.get("max")(scores)


def describe_strategy(scores: Sequence[float], strategy: str = "confident") -> str:
    """In words, which part of ``strategy``'s rule made its answer for these face scores (for reports)."""
    return STRATEGIES.get(strategy).explain(scores)


# ---- combination of the models' video probabilities ----------------------------------------------------

COMBINATIONS: Registry[Callable[[np.ndarray], float]] = Registry("model combination")


@COMBINATIONS.register("mean")
def arithmetic_mean(p: np.ndarray) -> float:
    """The arithmetic mean (the winner's)."""
    return float(p.mean())


# keeps the log-odds finite for saturated models
GEOMETRIC_CLIP = 1e-7


@COMBINATIONS.register("geometric")
def normalised_geometric_mean(p: np.ndarray) -> float:
    """``prod(p)^(1/k) / (prod(p)^(1/k) + prod(1-p)^(1/k))``, i.e. the mean of the models' log-odds;
    unlike a plain geometric mean of ``p`` it treats REAL and FAKE alike."""
    p = np.clip(p, GEOMETRIC_CLIP, 1 - GEOMETRIC_CLIP)
    mean_logit = float(np.mean(np.log(p) - np.log1p(-p)))
    return float(1.0 / (1.0 + np.exp(-mean_logit)))


def combine_models(probabilities: Sequence[float], method: str = "mean") -> float:
    """One probability from the models' video probabilities, by the combination ``method``."""
    combine = COMBINATIONS.get(method)
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("combine_models needs at least one model probability")
    return combine(p)


# ---- the video's score: which faces it is made of ------------------------------------------------------


@dataclass(frozen=True)
class VideoRule:
    """Which faces make a video's score, and how the report says so.

    ``score(pooled, person_scores)``: the video's score from the pooled one (the strategy over every face)
    and each person's (the strategy over that person's faces). ``note``: the report's paragraph, with
    ``{rule}`` (the strategy in words), ``{combine}`` and ``{track_min_faces}``; ``why``: a video page's
    first sentence, with ``{probability}``, ``{pooled}`` (the pooled score and its explanation) and
    ``{per_person}``."""

    score: Callable[[float, Sequence[float]], float]
    note: str
    why: str

    def report_note(self, options) -> str:
        return self.note.format(rule=STRATEGIES.get(options.strategy).rule, combine=options.combine,
                                track_min_faces=options.track_min_faces or "a tenth of the sampled frames, at least 2")

    def explain(self, probability: float, pooled: str, per_person: float) -> str:
        return self.why.format(probability=probability, pooled=pooled, per_person=per_person)


VIDEO_RULES: Registry[VideoRule] = Registry("video aggregate")


def pooled_score(pooled: float, person_scores: Sequence[float]) -> float:
    return pooled


def most_fake_person(pooled: float, person_scores: Sequence[float]) -> float:
    return max(person_scores)


VIDEO_RULES.register("winner", VideoRule(
    pooled_score,
    "<p><b>Aggregation: winner (pooled).</b> Every face of every sampled frame is pooled, whoever it belongs to, "
    "and the video score is {rule} (per model, the models combined by their {combine}). A video's score is "
    "therefore not the mean of its face scores; its page says which rule applied. The per-person score is shown "
    "next to it for comparison.</p>",
    "Winner's rule (pooled), {pooled}. For comparison, the per-person rule gives {per_person:.4f}."))
VIDEO_RULES.register("per-person", VideoRule(
    most_fake_person,
    "<p><b>Aggregation: per person.</b> The faces of the sampled frames are linked into tracks (box IoU between "
    "sampled frames with a size-aware gate); tracks seen in too few frames (minimum: {track_min_faces}) are "
    "dropped as detector false positives. Each person's score is {rule} of that person's face scores (per "
    "model, the models combined by their {combine}); the video gets its most fake person's score, so one "
    "swapped face is not averaged away by a real one. A video's score is therefore not the mean of its face "
    "scores; its page says which faces made it.</p>",
    "Per-person rule: the video gets the most fake person's score, {probability:.4f}. For comparison, the "
    "winner's rule {pooled}."))
