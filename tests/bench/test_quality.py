"""bench/quality.py: the scores it makes from cached face scores are the predictor's own answers (single
models and ensembles, calibrated and raw), and the cache is reused only while checkpoint, options and
video are unchanged. Real Lite0 weights on generated test videos (the full bench trains for hours)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from bench import quality
from datasets.layout import DataLayout
from models.checkpoints import save_checkpoint
from models.classifier2d import DeepFakeClassifier
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor

ENCODER = "tf_efficientnet_lite0"
FRAMES_PER_VIDEO = 4


def _checkpoint(path: Path, seed: int, temperature: float | None) -> Path:
    torch.manual_seed(seed)
    model = DeepFakeClassifier(ENCODER)
    with torch.no_grad():  # spread the random head's scores so that the temperature visibly acts
        model.fc.weight.mul_(10.0)
        model.fc.bias.copy_(10.0 * (model.fc.bias - 1.7))
    extra = {"calibration": {"method": "temperature", "temperature": temperature, "fitted_on": "fold 1, 20 videos",
                             "log_loss_before": 0.7, "log_loss_after": 0.6}} if temperature else {}
    save_checkpoint(path, model.eval(), config={"encoder": ENCODER, "size": 96}, **extra)
    return path


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("weights")
    return [_checkpoint(folder / "real_best", 0, 2.5), _checkpoint(folder / "self_blended_best", 1, None)]


@pytest.fixture(scope="module")
def test_set(sample_root) -> list[quality.Video]:
    folder = DataLayout(sample_root).test_videos_dir
    labels = json.loads((folder / "metadata.json").read_text())
    return [quality.Video(p.name, p, int(labels[p.name]["label"] == "FAKE"), group="fold 0")
            for p in sorted(folder.glob("*.mp4"))[:3]]


def test_cached_scores_give_the_predictors_answers(two_models, test_set, tmp_path):
    options = resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu")
    scores = quality.group_scores(tmp_path, "fold 0", two_models, test_set, options)
    assert [scores[c].temperature for c in two_models] == [2.5, None]
    both = VideoPredictor(two_models, options)
    for video in test_set:
        pred = both.predict_video(video.path)
        calibrated, raw = quality.video_probabilities([scores[c] for c in two_models], video.name, options)
        assert calibrated == pytest.approx(pred.probability, abs=1e-9)
        assert raw == pytest.approx(pred.uncalibrated_probability, abs=1e-9)
        alone = VideoPredictor(two_models[:1], options).predict_video(video.path)
        assert quality.video_probabilities([scores[two_models[0]]], video.name, options)[0] == \
            pytest.approx(alone.probability, abs=1e-9)
    # an ensemble row pooled over a group, scored by the evaluation protocol
    row = quality.Row("pair", {"fold 0": [scores[c] for c in two_models]})
    calibrated_rows, raw_rows = quality.scored(row, test_set, options)
    assert [v.name for v in calibrated_rows] == [v.name for v in test_set]
    assert [v.probability for v in raw_rows] != [v.probability for v in calibrated_rows]


def test_the_cache_is_reused_until_the_video_or_the_options_change(two_models, test_set, tmp_path):
    options = resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu")
    videos = [quality.Video(v.name, tmp_path / v.name, v.label, group=v.group) for v in test_set]
    for src, video in zip(test_set, videos):
        video.path.write_bytes(src.path.read_bytes())
    first = quality.group_scores(tmp_path, "fold 0", two_models[:1], videos, options)
    cache = quality.cache_path(tmp_path, "fold 0", two_models[0])
    assert cache.is_file()
    record = options.as_dict()
    assert set(quality.cached_scores(cache, record, videos)) == {v.name for v in videos}
    changed = videos[0].path
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert set(quality.cached_scores(cache, record, videos)) == {v.name for v in videos[1:]}
    other = resolve_options(frames_per_video=FRAMES_PER_VIDEO + 1, device="cpu").as_dict()
    assert quality.cached_scores(cache, other, videos) == {}
    again = quality.group_scores(tmp_path, "fold 0", two_models[:1], videos, options)  # predicts the changed one
    assert again[two_models[0]].videos[videos[0].name]["input"] == quality.video_fingerprint(changed)
    assert again[two_models[0]].videos[videos[1].name] == first[two_models[0]].videos[videos[1].name]
    assert set(quality.cached_scores(cache, record, videos)) == {v.name for v in videos}


def test_runs_and_folds_follow_the_training_layout(tmp_path):
    run = quality.parse_run("self_blended:111")
    env = quality.train_env(tmp_path, run, 4)
    assert env == {"WEIGHTS_DIR": str(tmp_path / "weights" / "self_blended_111" / "test4"),
                   "LOG_DIR": str(tmp_path / "logs" / "self_blended_111" / "test4"),
                   "FOLD": "0", "TEST_FOLD": "4", "TRAIN_ARGS": "--set fakes=self_blended"}
    runs = [quality.Run("real", 111), quality.Run("self_blended", 111), quality.Run("real", 555)]
    assert quality.ensemble_pairs(runs) == [(runs[0], runs[1])]
