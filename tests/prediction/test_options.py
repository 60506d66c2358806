"""Predictor options and presets: one resolver, CLI flags that override a preset, results that say how."""

from __future__ import annotations

import dataclasses
import json

import pytest

from faces.detectors import DETECTORS
from models.weights import WINNER_CHECKPOINTS
from prediction import aggregation, cli, outputs
from prediction.options import (
    OPTION_NAMES,
    PRESETS,
    PredictorOptions,
    Preset,
    get_preset,
    option_choices,
    resolve_options,
)
from tests.conftest import registered
from tests.prediction.conftest import FRAMES_PER_VIDEO


def test_default_preset_is_the_dataclass_defaults():
    assert resolve_options() == resolve_options("default") == PredictorOptions()
    options = resolve_options()
    assert (options.frame_sampling, options.detector_resize, options.detector_scale, options.face_order,
            options.resize_rounding, options.max_faces, options.detector_batch_size) == \
        ("round", "cv2", "auto", "score", "round", None, None)


def test_winner_preset_and_overrides():
    winner = resolve_options("winner")
    assert (winner.frames_per_video, winner.frame_sampling, winner.detector_resize, winner.detector_scale,
            winner.detector_batch_size, winner.face_order, winner.resize_rounding, winner.max_faces,
            winner.channels_last, winner.strategy, winner.combine, winner.precision) == \
        (32, "truncate", "pil", 0.5, 1, "area", "truncate", 127, True, "confident", "mean", "auto")
    # derived values follow the overridden frame count; an explicit value wins over the derived one
    # MTCNN: the exact faster resampling in both presets; the crops' faster layout (boxes move by rounding) not in
    # the winner's, which gives the original's boxes bit for bit
    assert (winner.detector_fast_resampling, winner.detector_channels_last_crops) == (True, False)
    default = resolve_options()
    assert (default.detector_fast_resampling, default.detector_channels_last_crops) == (True, True)
    assert resolve_options("winner", frames_per_video=8).max_faces == 31
    assert resolve_options("winner", frames_per_video=8, max_faces=None).max_faces is None
    overridden = resolve_options("winner", detector_scale="auto", tta=True)
    assert (overridden.detector_scale, overridden.tta, overridden.frame_sampling) == ("auto", True, "truncate")
    assert PRESETS.get("winner").checkpoint_names == tuple(f.name for f in WINNER_CHECKPOINTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        winner.tta = True  # type: ignore[misc]
    # winner-fast: the winner's options but the classifier's faster arithmetic
    fast = resolve_options("winner-fast")
    differing = {name for name in OPTION_NAMES if getattr(fast, name) != getattr(winner, name)}
    assert differing == {"fold_batchnorm", "classifier_batch_size"}
    assert (fast.fold_batchnorm, fast.classifier_batch_size) == (True, None)
    assert PRESETS.get("winner-fast").checkpoint_names == PRESETS.get("winner").checkpoint_names


@pytest.mark.parametrize("call, message", [
    (lambda: resolve_options("fastest"), "unknown preset 'fastest'; known: default, winner, winner-fast"),
    (lambda: resolve_options(frames=16), "unknown predictor option(s) frames"),
    (lambda: resolve_options(strategy="median"), "strategy='median' is not one of confident, mean, max"),
    (lambda: resolve_options(frames_per_video=0), "at least 1"),
    (lambda: resolve_options(detector_scale=-1.0), "positive factor"),
])
def test_bad_names_and_values_are_clear_errors(call, message):
    with pytest.raises(ValueError) as excinfo:
        call()
    assert message in str(excinfo.value)


def test_the_choices_of_the_seam_options_are_their_registries_names():
    choices = {f.name: option_choices(f) for f in dataclasses.fields(PredictorOptions)}
    assert choices["strategy"] == aggregation.STRATEGIES.names() == ("confident", "mean", "max")
    assert choices["combine"] == aggregation.COMBINATIONS.names() == ("mean", "geometric")
    assert choices["aggregate"] == aggregation.VIDEO_RULES.names() == ("winner", "per-person")
    assert choices["detector"] == DETECTORS.names() == ("mtcnn",)
    assert PRESETS.names() == ("default", "winner", "winner-fast")
    # and the command line offers them
    flags = {a.dest: a.choices for a in cli.build_parser()._actions}
    assert tuple(flags["strategy"]) == choices["strategy"] and tuple(flags["detector"]) == ("mtcnn",)
    assert sorted(flags["preset"]) == ["default", "winner", "winner-fast"]


def test_cli_flags_override_the_preset_and_only_when_given():
    parser = cli.build_parser()
    base = ["--video", "x.mp4", "--output", "o.csv"]
    assert cli.options_from_args(parser.parse_args(base)) == resolve_options()
    args = parser.parse_args(base + ["--preset", "winner", "--frames-per-video", "16", "--no-channels-last",
                                     "--detector-scale", "auto", "--max-faces", "all", "--min-face-size", "30"])
    assert cli.options_from_args(args) == resolve_options(
        "winner", frames_per_video=16, channels_last=False, detector_scale="auto", max_faces=None,
        min_face_size_px=30)
    # a flag for every option (adding a field adds its flag)
    flags = {a.dest for a in parser._actions}
    assert set(OPTION_NAMES) <= flags
    with pytest.raises(SystemExit) as excinfo:
        parser.parse_args(base + ["--detector-scale", "half"])
    assert excinfo.value.code == 2


def test_settings_in_metrics_json(test_videos, project_checkpoint, tmp_path):
    video = sorted(test_videos.glob("*.mp4"))[0]
    output = tmp_path / "one.csv"
    rc = cli.main(["--video", str(video), "--models", str(project_checkpoint), "--output", str(output),
                              "--preset", "winner", "--frames-per-video", str(FRAMES_PER_VIDEO), "--device", "cpu"])
    assert rc == 0
    settings = json.loads(outputs.metrics_path_for(output).read_text())["settings"]
    expected = resolve_options("winner", frames_per_video=FRAMES_PER_VIDEO, device="cpu").as_dict()
    assert settings["preset"] == "winner"
    assert {k: settings[k] for k in expected if k != "precision"} == {k: v for k, v in expected.items()
                                                                      if k != "precision"}
    assert settings["precision"] == "float32"


def test_winner_preset_without_models_names_the_missing_checkpoints(test_videos, tmp_path, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / WINNER_CHECKPOINTS[0].name).write_bytes(b"present")
    rc = cli.main(["--test-dir", str(test_videos), "--output", str(tmp_path / "o.csv"),
                              "--preset", "winner", "--weights-dir", str(weights)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "./download_weights.sh" in err and "6 are missing" in err
    assert all(f.name in err for f in WINNER_CHECKPOINTS[1:]) and WINNER_CHECKPOINTS[0].name not in err


def test_a_registered_preset_is_resolved_in_the_one_place_and_offered_on_the_command_line():
    toy = Preset("eight frames, two faces a frame, pooled", {
        "frames_per_video": 8, "max_faces": lambda o: 2 * o["frames_per_video"], "aggregate": "winner"})
    with registered(PRESETS, "toy", toy):
        options = resolve_options("toy")
        assert (options.frames_per_video, options.max_faces, options.aggregate) == (8, 16, "winner")
        assert options.strategy == PredictorOptions().strategy  # what the preset leaves alone: the defaults
        assert resolve_options("toy", frames_per_video=4).max_faces == 8  # derived after the overrides
        parser = cli.build_parser()
        args = parser.parse_args(["--video", "x.mp4", "--output", "o.csv", "--preset", "toy", "--tta"])
        assert cli.options_from_args(args) == dataclasses.replace(options, tta=True)
        assert get_preset("toy").checkpoint_names == ()
    with pytest.raises(ValueError, match="unknown preset 'toy'; known: default, winner, winner-fast"):
        resolve_options("toy")
