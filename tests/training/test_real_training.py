"""A short training run on real FF++ video: preprocessing, training and prediction end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from core.calibration import apply_temperature
from core.input_spec import InputSpec
from core.metrics import auc as core_auc
from core.metrics import log_loss
from models.checkpoints import read_checkpoint
from prediction import cli, outputs
from tests.conftest import ffpp_subset_part
from training.calibrate import checkpoint_predictions, validation_loader
from training.pipelines.train_classifier import TrainOptions, train

pytestmark = pytest.mark.real_data

# two FF++ identity groups: the 033/097 pair with three methods each way, and the 055/147 pair
GROUP_A = ["033", "097", "033_097_DF", "033_097_F2F", "033_097_FS", "097_033_DF", "097_033_F2F", "097_033_FS"]
GROUP_B = ["055", "147", "055_147_DF", "147_055_DF"]


@pytest.fixture(scope="module")
def ffpp_small(ffpp_train, tmp_path_factory):
    """12 FF++ videos (2 identity groups) preprocessed into a fresh DATA_ROOT."""
    from preprocessing.pipeline import preprocess

    root = tmp_path_factory.mktemp("ffpp_small")
    ffpp_subset_part(ffpp_train, root, GROUP_A + GROUP_B)
    preprocess(root, workers=2, progress=False)
    return root


def test_training_on_real_ffpp_lowers_the_loss_and_scores_its_videos_better_than_chance(ffpp_small, tmp_path):
    folds = pd.read_csv(ffpp_small / "folds.csv", dtype={"video": str})
    fold_of = folds.groupby("video")["fold"].first()
    assert fold_of[GROUP_A].nunique() == 1 and fold_of[GROUP_B].nunique() == 1  # a pair never splits
    val_fold = int(fold_of["055"])
    assert int(fold_of["033"]) != val_fold

    result = train(TrainOptions(
        data_dir=str(ffpp_small), seed=111, fold=val_fold, progress=False,
        output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs"),
        overrides=["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=96", "batch_size=16",
                   "workers=0", "drop_path_rate=0", "epochs=6", "batches_per_epoch=10", "val_every=3",
                   "augment=false", "tensorboard_images=0", 'optimizer={"type": "Adam", "lr": 0.001}',
                   "schedule.type=constant"], no_hardcore=True))
    losses = result.step_losses
    assert len(losses) == 60 and np.isfinite(losses).all()
    # the loss on its own training videos (group A's crops, scored without augmentation, deterministic) is
    # well below a coin's (ln 2, what the untrained head's near-zero logits give); per-step losses of
    # 16-crop batches are too noisy to compare epochs by
    last = next((tmp_path / "weights").glob("*_last"))
    last_data = read_checkpoint(last)
    own_crops = validation_loader(ffpp_small, int(fold_of["033"]), last_data["config"], last_data["run"],
                                  InputSpec.from_dict(last_data["input_spec"]), 16, 0)
    own = checkpoint_predictions(last, own_crops, torch.device("cpu"), "auto", False)
    assert log_loss(own.labels, own.probabilities) < 0.9 * np.log(2), list(zip(own.labels, own.probabilities))

    # the model's answer on its own training videos (group A), through the user's predictor
    test_dir = tmp_path / "own_videos"
    test_dir.mkdir()
    metadata = json.loads((ffpp_small / "dfdc_train_part_0" / "metadata.json").read_text())
    for name in GROUP_A:
        (test_dir / f"{name}.mp4").symlink_to(ffpp_small / "dfdc_train_part_0" / f"{name}.mp4")
    (test_dir / "metadata.json").write_text(json.dumps({f"{n}.mp4": metadata[f"{n}.mp4"] for n in GROUP_A}))
    best = next((tmp_path / "weights").glob("*_best"))
    # the temperature fitted at the end on the validation fold's videos lowers their log loss; the order of
    # the scores, so the AUC, stays
    best_data = read_checkpoint(best)
    calibration = best_data["calibration"]
    assert calibration["fitted_on"] == f"fold {val_fold}, {len(GROUP_B)} videos"
    assert calibration["log_loss_after"] < calibration["log_loss_before"]
    loader = validation_loader(ffpp_small, val_fold, best_data["config"], best_data["run"],
                               InputSpec.from_dict(best_data["input_spec"]), 16, 0)
    scores = checkpoint_predictions(best, loader, torch.device("cpu"), "auto", False)
    calibrated = apply_temperature(scores.probabilities, calibration["temperature"])
    assert log_loss(scores.labels, calibrated) == pytest.approx(calibration["log_loss_after"])
    assert core_auc(scores.labels, calibrated) == core_auc(scores.labels, scores.probabilities)
    output = tmp_path / "own.csv"
    assert cli.main(["--test-dir", str(test_dir), "--models", str(best), "--output", str(output),
                                "--frames-per-video", "8", "--no-progress"]) == 0
    rows = pd.read_csv(output)
    y = [int(metadata[n]["label"] == "FAKE") for n in rows["filename"]]
    auc = roc_auc_score(y, rows["label"])
    assert auc > 0.5, rows
    summary = json.loads(outputs.metrics_path_for(output).read_text())
    assert summary["auc"] == pytest.approx(auc)
    assert set(summary["evaluation"]["per_method"]) == {"DF", "F2F", "FS"}
