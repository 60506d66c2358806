"""The aggregation rules over face scores and the combination of models, their registries, and toy
entries registered by a test that make the predictor's scores and the report's words."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest

from prediction import cli, outputs
from prediction.aggregation import (
    COMBINATIONS,
    CONFIDENT,
    STRATEGIES,
    VIDEO_RULES,
    ConfidentRule,
    VideoRule,
    combine_models,
    confident_strategy,
    describe_strategy,
    max_strategy,
    mean_strategy,
)
from prediction.options import resolve_options
from prediction.persons import read_persons
from prediction.report import aggregation_note
from tests.conftest import registered

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


# ---- the registries: constants named once, words made from them ------------------------------------------


def test_the_confident_rules_words_come_from_its_constants():
    assert (CONFIDENT.fake_threshold, CONFIDENT.min_fake_faces, CONFIDENT.fake_share_divisor,
            CONFIDENT.real_threshold, CONFIDENT.real_share) == (0.8, 11, 2.5, 0.2, 0.9)
    assert CONFIDENT.rule == ("the DFDC winner's confident rule (if more than 11 faces and more than n / 2.5 of "
                              "them score above 0.8, the mean of those; else if more than 90% score below 0.2, "
                              "the mean of those; else the mean of all)")
    assert describe_strategy([0.9] * 12 + [0.3] * 8) == ("12 of 20 faces score above 0.8 (more than 11 and more "
                                                         "than n / 2.5): the mean of those 12")
    assert describe_strategy([0.1] * 19 + [0.9]) == ("19 of 20 faces score below 0.2 (more than 90%): the mean "
                                                      "of those 19")
    assert describe_strategy([0.3, 0.6, 0.9]) == ("neither 1 faces above 0.8 (needs more than 11 and n / 2.5) "
                                                   "nor 0 below 0.2 (needs more than 90%): the mean of all 3")
    assert describe_strategy([0.3, 0.6, 0.9], "max") == "the highest of the 3 face scores"
    # another constant changes the rule, its words and the report's paragraph together
    stricter = ConfidentRule(min_fake_faces=3)
    assert stricter([0.9] * 4 + [0.1] * 2) == pytest.approx(0.9) and CONFIDENT([0.9] * 4 + [0.1] * 2) < 0.9
    assert "more than 3 faces" in stricter.rule and "4 of 6 faces score above 0.8" in stricter.explain([0.9] * 4 + [0.1] * 2)
    with registered(STRATEGIES, "stricter", stricter):
        assert "more than 3 faces and more than n / 2.5" in aggregation_note(resolve_options(strategy="stricter"))


@pytest.mark.parametrize("registry, option, known", [
    (STRATEGIES, "strategy", "confident, mean, max"),
    (COMBINATIONS, "combine", "mean, geometric"),
    (VIDEO_RULES, "aggregate", "winner, per-person"),
])
def test_unknown_names_are_refused_with_the_known_ones_listed(registry, option, known):
    with pytest.raises(ValueError, match=f"unknown {registry.kind} 'median'; known: {known}$"):
        registry.get("median")
    with pytest.raises(ValueError, match=f"option {option}='median' is not one of {known}$"):
        resolve_options(**{option: "median"})


@dataclass(frozen=True)
class MedianRule:
    """A toy strategy: the median face score."""

    rule: str = "the median"

    def __call__(self, scores) -> float:
        return float(np.median(np.asarray(scores, dtype=np.float64)))

    def explain(self, scores) -> str:
        return f"the median of the {len(scores)} face scores"


LEAST_FAKE = VideoRule(
    lambda pooled, person_scores: min(person_scores),
    "<p><b>Aggregation: least fake person.</b> Each person's score is {rule}; the video gets the lowest.</p>",
    "Least-fake-person rule: {probability:.4f}. For comparison, the winner's rule {pooled}.")


def test_a_registered_strategy_and_video_rule_make_the_scores_and_the_report(two_person_dir, project_checkpoint,
                                                                              tmp_path):
    output, report = tmp_path / "out.csv", tmp_path / "report"
    with registered(STRATEGIES, "median", MedianRule()), registered(VIDEO_RULES, "least-fake", LEAST_FAKE):
        assert cli.main(["--test-dir", str(two_person_dir), "--models", str(project_checkpoint), "--output",
                         str(output), "--frames-per-video", "8", "--strategy", "median", "--aggregate",
                         "least-fake", "--report", str(report), "--no-progress", "--device", "cpu"]) == 0
    persons = read_persons(outputs.persons_path_for(output))
    assert len(persons) == 3
    for name, video in persons.items():
        assert len(video.persons) == 2 and video.dropped_tracks is None, name
        for person in video.persons:  # one model: the face score is the model's
            assert person.score == pytest.approx(np.median(person.face_scores), abs=1e-12)
        every_face = np.concatenate([p.face_scores for p in video.persons])
        assert video.pooled_probability == pytest.approx(np.median(every_face), abs=1e-12)
        assert video.probability == min(p.score for p in video.persons) < max(p.score for p in video.persons)
    index = (report / "index.html").read_text()
    assert "<p><b>Aggregation: least fake person.</b> Each person's score is the median; the video gets" in index
    page = next((report / "videos").glob("*.html")).read_text()
    assert re.search(r"Least-fake-person rule: [0-9.]+\. For comparison, the winner&#x27;s rule pooled over all "
                     r"16 faces: [0-9.]+; the median of the 16 face scores", page)
    # removed again: the names are unknown
    assert "median" not in STRATEGIES and "least-fake" not in VIDEO_RULES
