"""Calibrated probabilities: a temperature fitted at the end of training on the validation fold's video
scores, stored in the checkpoint; the calibrate command for checkpoints trained before."""

from __future__ import annotations

import pytest
import torch

from core.calibration import apply_temperature
from core.input_spec import InputSpec
from core.metrics import auc, log_loss
from models.checkpoints import CheckpointError, load_model, read_checkpoint
from training import calibrate
from training.calibrate import checkpoint_predictions, validation_loader
from training.pipelines.train_classifier import TrainOptions, train

NAME = "DeepFakeClassifier_tf_efficientnet_lite0_111"
TINY = ["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=64", "batch_size=4", "workers=0",
        "drop_path_rate=0", "tensorboard_images=0", 'optimizer={"type": "Adam", "lr": 0.001}',
        "schedule.type=constant", "batches_per_epoch=4", "epochs=3", "val_every=1", "augment=false",
        "hardcore=false"]


@pytest.fixture(scope="module")
def weights(preprocessed_root, tmp_path_factory):
    """A short run on the sample set, validated on fold 0 every epoch."""
    out = tmp_path_factory.mktemp("calibrated")
    train(TrainOptions(data_dir=str(preprocessed_root), overrides=TINY, seed=111, progress=False,
                       output_dir=str(out / "weights"), log_dir=str(out / "logs")))
    return out / "weights"


def _fold_scores(checkpoint, root):
    data = read_checkpoint(checkpoint)
    loader = validation_loader(root, 0, data["config"], data["run"], InputSpec.from_dict(data["input_spec"]), 8, 0)
    return checkpoint_predictions(checkpoint, loader, torch.device("cpu"), "auto", False)


def test_training_ends_with_a_temperature_that_lowers_the_validation_log_loss_and_keeps_the_auc(
        weights, preprocessed_root):
    best = read_checkpoint(weights / f"{NAME}_best")
    calibration = best["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["fitted_on"] == f"fold 0, {best['metrics']['n_videos']} videos"
    # fitted on the scores the validation of the best epoch computed
    assert calibration["log_loss_before"] == pytest.approx(best["metrics"]["log_loss"])
    assert calibration["log_loss_after"] < calibration["log_loss_before"]
    # the same numbers from the saved weights, scored again on the fold
    scores = _fold_scores(weights / f"{NAME}_best", preprocessed_root)
    calibrated = apply_temperature(scores.probabilities, calibration["temperature"])
    assert log_loss(scores.labels, scores.probabilities) == pytest.approx(calibration["log_loss_before"])
    assert log_loss(scores.labels, calibrated) == pytest.approx(calibration["log_loss_after"])
    assert auc(scores.labels, calibrated) == auc(scores.labels, scores.probabilities) == best["metrics"]["auc"]
    # _last is calibrated on its own epoch's validation; the one loader reads the entry
    last = read_checkpoint(weights / f"{NAME}_last")
    assert last["epoch"] == 2 and last["calibration"]["log_loss_before"] == pytest.approx(last["metrics"]["log_loss"])
    assert load_model(weights / f"{NAME}_best").calibration == calibration
    # an epoch file stays as it was saved
    assert "calibration" not in read_checkpoint(weights / f"{NAME}_2")


def test_the_calibrate_command_fits_the_same_temperature_on_a_checkpoint_without_one(
        weights, preprocessed_root, tmp_path, capsys):
    data = read_checkpoint(weights / f"{NAME}_best")
    fitted = data.pop("calibration")
    older = tmp_path / f"{NAME}_best"  # as written before calibration existed
    torch.save(data, older)
    assert load_model(older).calibration is None

    assert calibrate.main([str(older), "--data-dir", str(preprocessed_root), "--no-progress"]) == 0
    assert f"temperature {fitted['temperature']:.4f} fitted on {fitted['fitted_on']}" in capsys.readouterr().out
    again = read_checkpoint(older)
    assert again["calibration"]["temperature"] == pytest.approx(fitted["temperature"], rel=1e-6)
    assert again["calibration"]["fitted_on"] == fitted["fitted_on"]
    assert again.keys() - {"calibration"} == data.keys() and again["epoch"] == data["epoch"]
    for key, value in data["state_dict"].items():
        assert torch.equal(value, again["state_dict"][key]), key
    assert sorted(p.name for p in tmp_path.iterdir()) == [older.name]  # no temp file left


def test_the_calibrate_command_refuses_training_folds_existing_outputs_and_released_files(
        weights, preprocessed_root, tmp_path, capsys):
    best = weights / f"{NAME}_best"
    before = best.read_bytes()
    # fold 1 is what the run trained on
    assert calibrate.main([str(best), "--data-dir", str(preprocessed_root), "--fold", "1"]) == 2
    assert "validated on fold 0" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep me")
    assert calibrate.main([str(best), "--data-dir", str(preprocessed_root), "--output", str(taken)]) == 2
    assert "exists" in capsys.readouterr().err and taken.read_bytes() == b"keep me"
    released = tmp_path / "final_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0_36"
    released.write_bytes(before)
    assert calibrate.main([str(released), "--data-dir", str(preprocessed_root)]) == 2
    assert "--output" in capsys.readouterr().err and released.read_bytes() == before
    bare = tmp_path / "bare_tf_efficientnet_lite0_best"  # the winner's format: weights only, no fold recorded
    torch.save({"state_dict": read_checkpoint(best)["state_dict"]}, bare)
    assert calibrate.main([str(bare), "--data-dir", str(preprocessed_root)]) == 2
    assert "does not record its validation fold; pass --fold N" in capsys.readouterr().err
    assert best.read_bytes() == before


def test_a_calibration_the_loader_cannot_use_is_a_clear_error(weights, tmp_path):
    data = read_checkpoint(weights / f"{NAME}_best")
    data["calibration"] = {"method": "temperature", "temperature": -1.0}
    bad = tmp_path / "bad_best"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match="python -m training.calibrate"):
        load_model(bad)
