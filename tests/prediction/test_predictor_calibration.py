"""The predictor applies each checkpoint's stored temperature to that model's video score before the
models are combined; ``--calibration off`` gives the raw scores; the metrics JSON records what was
applied and the evaluation before and after. Real timm weights on the generated test videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.calibration import apply_temperature, fit_temperature
from core.metrics import DECISION_THRESHOLD, UNCERTAIN_BAND, log_loss, verdict
from datasets.dfdc import read_labels
from models.checkpoints import load_model
from prediction import cli
from prediction.aggregation import STRATEGIES, combine_models
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor
from tests.prediction.conftest import FRAMES_PER_VIDEO

STORED_TEMPERATURE = 3.0  # pulls the scores towards 0.5 (T > 1)


def _with_temperature(source: Path, target: Path, temperature: float) -> Path:
    """``source`` with a ``calibration`` entry as training writes it."""
    data = torch.load(source, map_location="cpu", weights_only=False)
    data["calibration"] = {"method": "temperature", "temperature": temperature, "fitted_on": "test videos",
                           "log_loss_before": float("nan"), "log_loss_after": float("nan")}
    torch.save(data, target)
    return target


@pytest.fixture(scope="module")
def calibrated_checkpoint(project_checkpoint, tmp_path_factory) -> Path:
    return _with_temperature(project_checkpoint, tmp_path_factory.mktemp("calibrated") / project_checkpoint.name,
                             STORED_TEMPERATURE)


def _options(**overrides):
    return resolve_options(frames_per_video=FRAMES_PER_VIDEO, device="cpu", **overrides)


def test_temperature_applied_per_model_before_the_models_are_combined(calibrated_checkpoint, winner_checkpoint,
                                                                      test_videos):
    video = sorted(test_videos.glob("*.mp4"))[0]
    on = VideoPredictor([calibrated_checkpoint, winner_checkpoint], _options(aggregate="winner", combine="mean"))
    assert on.temperatures == [STORED_TEMPERATURE, None]  # the winner's format holds no temperature
    pred = on.predict_video(video)
    assert not pred.fell_back
    strategy = STRATEGIES.get("confident")
    raw_per_model = [strategy(row) for row in pred.face_scores]
    calibrated = [float(apply_temperature([raw_per_model[0]], STORED_TEMPERATURE)[0]), raw_per_model[1]]
    assert pred.model_probabilities == pytest.approx(calibrated)
    assert pred.probability == pytest.approx(combine_models(calibrated, "mean"))
    assert pred.raw_probability == pytest.approx(combine_models(raw_per_model, "mean"))
    assert abs(pred.probability - pred.raw_probability) > 1e-4  # the temperature moved the answer

    off = VideoPredictor([calibrated_checkpoint, winner_checkpoint], _options(aggregate="winner", calibration="off"))
    assert off.temperatures == [None, None]
    raw = off.predict_video(video)
    assert raw.raw_probability is None and raw.probability == pytest.approx(pred.raw_probability)


def test_per_person_scores_are_calibrated_per_model(calibrated_checkpoint, two_person_dir):
    predictor = VideoPredictor([calibrated_checkpoint], _options(aggregate="per-person"))
    video = sorted(two_person_dir.glob("*.mp4"))[0]
    pred = predictor.predict_video(video)
    assert pred.n_persons >= 1
    strategy = STRATEGIES.get("confident")
    expected = [float(apply_temperature([strategy(pred.face_scores[0, pred.face_persons == k])],
                                        STORED_TEMPERATURE)[0]) for k in range(pred.n_persons)]
    assert pred.person_scores == pytest.approx(expected)
    assert pred.probability == pytest.approx(max(expected))


def test_a_checkpoint_without_temperature_gives_its_raw_scores(winner_checkpoint, test_videos):
    video = sorted(test_videos.glob("*.mp4"))[0]
    on = VideoPredictor([winner_checkpoint], resolve_options("winner", frames_per_video=FRAMES_PER_VIDEO,
                                                             device="cpu"))
    off = VideoPredictor([winner_checkpoint], resolve_options("winner", frames_per_video=FRAMES_PER_VIDEO,
                                                              device="cpu", calibration="off"))
    assert on.options.calibration == "on" and not on.calibrated
    assert on.calibration_record()["models"][0] == {"path": str(winner_checkpoint), "applied": False,
                                                    "temperature": None, "stored": None}
    first, second = on.predict_video(video), off.predict_video(video)
    assert first.raw_probability is None
    assert first.probability == second.probability


def _predict(checkpoint: Path, videos: Path, output: Path, *extra: str) -> dict:
    assert cli.main(["--test-dir", str(videos), "--models", str(checkpoint), "--output", str(output),
                     "--frames-per-video", str(FRAMES_PER_VIDEO), "--bootstrap", "200", "--no-progress",
                     *extra]) == 0
    return json.loads(output.with_name(output.stem + ".metrics.json").read_text())


def test_fitted_temperature_lowers_log_loss_and_keeps_auc(project_checkpoint, test_videos, tmp_path, capsys):
    labels = read_labels(test_videos / "metadata.json")
    raw = _predict(project_checkpoint, test_videos, tmp_path / "raw.csv", "--calibration", "off")
    assert raw["calibration"]["models"][0]["applied"] is False and "uncalibrated" not in raw
    persons = json.loads((tmp_path / "raw.persons.json").read_text())
    names = sorted(labels)
    fit = fit_temperature([labels[n] for n in names], [persons[n]["probability"] for n in names])
    calibrated = _with_temperature(project_checkpoint, tmp_path / project_checkpoint.name, fit.temperature)
    assert fit.temperature != pytest.approx(1.0) and load_model(calibrated).calibration["temperature"] == fit.temperature

    after = _predict(calibrated, test_videos, tmp_path / "after.csv")
    record = after["calibration"]["models"][0]
    assert (record["applied"], record["temperature"]) == (True, fit.temperature)
    before = after["uncalibrated"]["overall"]
    # the raw evaluation of a calibrated run is the raw run's, and the AUC does not move with the temperature
    assert before["log_loss"] == pytest.approx(raw["log_loss"], abs=1e-9)
    assert before["auc"] == pytest.approx(raw["auc"], abs=1e-12) and after["auc"] == pytest.approx(raw["auc"], abs=1e-12)
    assert after["log_loss"] == pytest.approx(fit.log_loss_after, abs=1e-6)
    assert after["log_loss"] <= before["log_loss"]
    assert set(after["uncalibrated"]["overall"]["ci"]) >= {"auc", "log_loss"}
    written = json.loads((tmp_path / "after.persons.json").read_text())
    assert log_loss([labels[n] for n in names], [written[n]["raw_probability"] for n in names]) == \
        pytest.approx(before["log_loss"], abs=1e-9)
    assert "before calibration (raw scores): log loss" in capsys.readouterr().out
    counts = after["decision"]["counts"]
    assert sum(counts.values()) == len(names)
    assert counts["uncertain"] == sum(verdict(written[n]["probability"]) == "uncertain" for n in names)


def test_verdict_uses_the_threshold_and_the_uncertain_band():
    low, high = UNCERTAIN_BAND
    assert low < DECISION_THRESHOLD < high
    assert verdict(0.5) == "uncertain"  # the fallback answer
    assert (verdict(low), verdict(high)) == ("uncertain", "uncertain")
    assert verdict(np.nextafter(high, 1.0)) == "FAKE" and verdict(np.nextafter(low, 0.0)) == "REAL"
