"""bench/quality.py: the scores it makes from cached face and chunk scores are the predictor's own answers
(single 2D and 3D models, ensembles, the 2D + 3D pair pooled per person; calibrated and raw), the cache is
reused only while checkpoint, options and video are unchanged, and the recipes train in the layout the runs
are kept in. Real Lite0 weights (2D, and inflated to 3D) on generated test videos (the full bench trains for
hours)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from bench import quality
from core.geometry import clip_full_side_px
from datasets.layout import DataLayout
from models.checkpoints import save_checkpoint
from models.classifier2d import DeepFakeClassifier
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor, predict_on_video_set
from tests.conftest import save_inflated_clip_checkpoint
from training.datasets.fake_sources import FAKE_SOURCES
from training.tools.config import load_config

ENCODER = "tf_efficientnet_lite0"
FRAMES_PER_VIDEO = 4
CLIP_FRAMES = 4  # a short chunk keeps the CPU cost small
TOO_LONG_CLIP_FRAMES = 40  # more than the 20 frames of a generated test video: no chunk


def _calibration(temperature: float) -> dict:
    return {"calibration": {"method": "temperature", "temperature": temperature, "fitted_on": "fold 1, 20 videos",
                            "log_loss_before": 0.7, "log_loss_after": 0.6}}


def _checkpoint(path: Path, seed: int, temperature: float | None) -> Path:
    torch.manual_seed(seed)
    model = DeepFakeClassifier(ENCODER)
    with torch.no_grad():  # spread the random head's scores so that the temperature visibly acts
        model.fc.weight.mul_(10.0)
        model.fc.bias.copy_(10.0 * (model.fc.bias - 1.7))
    extra = _calibration(temperature) if temperature else {}
    save_checkpoint(path, model.eval(), config={"encoder": ENCODER, "size": 96}, **extra)
    return path


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("weights")
    return [_checkpoint(folder / "real_best", 0, 2.5), _checkpoint(folder / "self_blended_best", 1, None)]


def _clip_checkpoint(path: Path, clip_frames: int, temperature: float | None) -> Path:
    """An I3D network inflated from the offline Lite0 ImageNet weights, saved by the project's writer."""
    config = {"family": "inflated3d", "network": "Inflated3D", "encoder": ENCODER, "size": 64,
              "clip_frames": clip_frames, "pretrained": "lite0-package"}
    return save_inflated_clip_checkpoint(path, config, **(_calibration(temperature) if temperature else {}))


@pytest.fixture(scope="module")
def clip_models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clip_weights")
    return {"chunked": _clip_checkpoint(folder / "real3d_best", CLIP_FRAMES, 0.5),
            "too_long": _clip_checkpoint(folder / "long3d_best", TOO_LONG_CLIP_FRAMES, None)}


@pytest.fixture(scope="module")
def test_set(sample_root) -> list[quality.Video]:
    folder = DataLayout(sample_root).test_videos_dir
    labels = json.loads((folder / "metadata.json").read_text())
    return [quality.Video(p.name, p, int(labels[p.name]["label"] == "FAKE"), group="fold 0")
            for p in sorted(folder.glob("*.mp4"))[:3]]


def _folder_run(predictor: VideoPredictor, videos: list[quality.Video]) -> dict[str, object]:
    """The predictor's answers on ``videos`` as one folder run, like the bench's (the same torch threads per
    operation: a direct ``predict_video`` call on more threads differs by about 1e-7)."""
    return {v.name: p for v, p in zip(videos, predict_on_video_set(predictor, [v.path for v in videos]))}


def test_cached_scores_give_the_predictors_answers(two_models, test_set, tmp_path):
    options = resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu")
    scores = quality.group_scores(tmp_path, "fold 0", two_models, test_set, options)
    assert [scores[c].temperature for c in two_models] == [2.5, None]
    both = _folder_run(VideoPredictor(two_models, options), test_set)
    first_alone = _folder_run(VideoPredictor(two_models[:1], options), test_set)
    for video in test_set:
        pred = both[video.name]
        calibrated, raw = quality.video_probabilities([scores[c] for c in two_models], video.name, options)
        assert calibrated == pytest.approx(pred.probability, abs=1e-9)
        assert raw == pytest.approx(pred.uncalibrated_probability, abs=1e-9)
        alone = first_alone[video.name]
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
    runs = [quality.Run("real", 111), quality.Run("self_blended", 111), quality.Run("real", 555),
            quality.Run("real3d", 555), quality.Run("real3d", 111)]
    assert quality.ensemble_pairs(runs) == [(runs[0], runs[1], "mixed sources"), (runs[0], runs[4], "2D + 3D"),
                                            (runs[2], runs[3], "2D + 3D")]


def test_each_recipe_names_a_config_a_fake_source_and_its_stage(tmp_path):
    for name, recipe in quality.RECIPES.items():
        config = load_config(quality.REPO_ROOT / recipe.config, [f"fakes={recipe.fakes}"])
        assert config.fakes in FAKE_SOURCES and (config.family != "classifier2d") == recipe.clips, name
    real3d = quality.parse_run("real3d:111")
    assert quality.train_env(tmp_path, real3d, 0) == {
        "WEIGHTS_DIR": str(tmp_path / "weights" / "real3d_111" / "test0"),
        "LOG_DIR": str(tmp_path / "logs" / "real3d_111" / "test0"), "FOLD": "1", "TEST_FOLD": "0",
        "TRAIN_ARGS": "--set fakes=real"}
    # a recipe that starts from another's model gets that recipe's finished checkpoint of the same seed and test
    # fold as init_from, once it is there
    from2d = quality.parse_run("real3d_from2d:111")
    assert quality.train_env(tmp_path, from2d, 0)["TRAIN_ARGS"] == "--set fakes=real"
    unfinished = quality.weights_dir(tmp_path, quality.Run("real", 111), 0) / f"DeepFakeClassifier_{ENCODER}_111_best"
    unfinished.parent.mkdir(parents=True)
    _checkpoint(unfinished, 0, None)  # no calibration yet: the 2D training has not ended
    assert quality.starting_checkpoint(tmp_path, from2d, 0) is None
    _checkpoint(unfinished, 0, 2.0)
    assert quality.train_env(tmp_path, from2d, 0)["TRAIN_ARGS"] == f"--set fakes=real --set init_from={unfinished}"
    assert quality.starting_checkpoint(tmp_path, from2d, 1) is None  # another fold: another 2D model
    assert load_config(quality.REPO_ROOT / from2d.spec.config, [f"init_from={unfinished}"]).init_from == str(unfinished)
    data = tmp_path / "data"
    assert quality.train_command(data, real3d, "configs/trial.json") == [
        "./train.sh", "--resume", str(data), "0", "configs/ffpp_3d_cpu.json", "111"]  # --config: 2D recipes only
    assert quality.train_command(data, quality.Run("both", 555), "configs/trial.json")[4] == "configs/trial.json"
    assert quality.train_command(data, quality.Run("both", 555))[4] == "configs/ffpp_cpu.json"
    assert "--clips" in quality.preprocess_command(data, True) and "--clips" not in quality.preprocess_command(data, False)
    assert "--clip-size" not in quality.preprocess_command(data, True)
    assert quality.preprocess_command(data, True, 184)[3:5] == ["--clip-size", "184"]
    # the 160 px recipe: its clips cut at the side its crop is taken from (no resize), even (the clips are video)
    at160 = quality.RECIPES.get("real3d_from2d_160")
    config = load_config(quality.REPO_ROOT / at160.config)
    assert config.size == 160 and at160.clip_size_px % 2 == 0
    assert clip_full_side_px(config.size, config.clip_crop) == at160.clip_size_px
    with pytest.raises(argparse.ArgumentTypeError, match="unknown recipe 'real4d'; known: real, self_blended"):
        quality.parse_run("real4d:111")
    with pytest.raises(SystemExit):
        quality.build_parser().parse_args(["--recipes", "real4d"])


def test_training_wall_times_are_recorded_or_read_from_the_run_files(tmp_path):
    run = quality.Run("real3d", 111)
    assert quality.training_seconds(tmp_path, run, 2) == (None, "-")
    folder = quality.weights_dir(tmp_path, run, 2)
    folder.mkdir(parents=True)
    (folder / "Inflated3D_x_111_args.json").write_text("{}")
    (folder / "Inflated3D_x_111_best").write_bytes(b"")
    os.utime(folder / "Inflated3D_x_111_args.json", (1_000_000, 1_000_000))
    os.utime(folder / "Inflated3D_x_111_best", (1_000_600, 1_000_600))
    assert quality.training_seconds(tmp_path, run, 2) == (600.0, "file times")
    os.utime(folder / "Inflated3D_x_111_args.json", (1_000_900, 1_000_900))  # rewritten by a later --resume
    assert quality.training_seconds(tmp_path, run, 2) == (None, "-")
    quality.record_training_seconds(tmp_path, run, 2, 612.34)
    assert quality.training_seconds(tmp_path, run, 2) == (612.3, "recorded")
    assert quality.training_seconds(tmp_path, run, 3) == (None, "-")


def test_3d_items_are_cached_and_the_2d_3d_pair_gives_the_predictors_answers(two_models, clip_models, test_set,
                                                                              tmp_path):
    options = resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu")
    image, clip = two_models[0], clip_models["chunked"]
    scores = quality.group_scores(tmp_path, "fold 0", [image, clip], test_set, options)
    assert [(scores[c].kind, scores[c].temperature) for c in (image, clip)] == [("2d", 2.5), ("3d", 0.5)]
    chunks = [scores[clip].videos[v.name]["chunk_scores"] for v in test_set]
    assert any(chunks)
    # the rows the bench builds from the runs of one seed and fold
    real, real3d = quality.Run("real", 111), quality.Run("real3d", 111)
    checkpoints = {0: {real: image, real3d: clip}}
    rows = {row.name: row for row in quality.in_domain_rows([real, real3d], {0: scores}, checkpoints)}
    assert set(rows) == {"real_111", "real3d_111", "real_111 + real3d_111 (2D + 3D)"}
    pair = rows["real_111 + real3d_111 (2D + 3D)"]
    assert [m.checkpoint for m in pair.models["fold 0"]] == [image, clip]
    cross, _ = quality.cross_rows([real, real3d], scores, checkpoints)
    assert [row.name for row in cross] == ["real_111 (1 fold model)", "real3d_111 (1 fold model)",
                                           "real_111 + real3d_111 (2D + 3D), all fold models"]
    # its scores are the predictor's with both checkpoints: per person each family calibrated, pooled 50:50
    calibrated, raw = quality.scored(pair, test_set, options)
    both = _folder_run(VideoPredictor([image, clip], options), test_set)
    clip_alone = _folder_run(VideoPredictor([clip], options), test_set)
    pooled = 0
    for video, scored, scored_raw in zip(test_set, calibrated, raw):
        pred = both[video.name]
        assert scored.probability == pytest.approx(pred.probability, abs=1e-9)
        assert scored_raw.probability == pytest.approx(pred.uncalibrated_probability, abs=1e-9)
        alone = clip_alone[video.name]
        assert quality.video_probabilities([scores[clip]], video.name, options) == pytest.approx(
            (alone.probability, alone.uncalibrated_probability), abs=1e-9)
        pooled += any(None not in (a, b) and abs(a - b) > 1e-3
                      for a, b in zip(pred.family_person_scores["2d"], pred.family_person_scores["3d"]))
    assert pooled  # some person had two different family scores: the pair is not one family's answer
    # a rerun reads the cache: no predictor call, the same entries
    again = quality.group_scores(tmp_path, "fold 0", [image, clip], test_set, options)
    assert again[clip].videos == scores[clip].videos
    calls = quality.prediction_calls(tmp_path, "fold 0")
    assert len(calls) == 1 and [kind for _, kind in calls[0]["models"]] == ["2d", "3d"]


def test_a_clip_model_predicted_later_and_without_chunks_leaves_the_persons_2d_scores(two_models, clip_models,
                                                                                       test_set, tmp_path):
    options = resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu")
    image, too_long = two_models[0], clip_models["too_long"]
    quality.group_scores(tmp_path, "cross", [image], test_set, options)
    scores = quality.group_scores(tmp_path, "cross", [image, too_long], test_set, options)
    calls = quality.prediction_calls(tmp_path, "cross")
    assert [[kind for _, kind in call["models"]] for call in calls] == [["2d"], ["3d"]]  # the 3D model alone
    assert {scores[too_long].videos[v.name]["fallback"] for v in test_set} == {"no_clip"}
    mixed = _folder_run(VideoPredictor([image, too_long], options), test_set)
    for video in test_set:
        pred = mixed[video.name]
        assert quality.video_probabilities([scores[image], scores[too_long]], video.name, options) == pytest.approx(
            (pred.probability, pred.uncalibrated_probability), abs=1e-9)
        assert quality.video_probabilities([scores[too_long]], video.name, options) == (0.5, 0.5)
