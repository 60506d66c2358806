"""Learning-curve training options on the preprocessed sample set's real crops: ``train_videos`` (a subset of
the training videos, whole identity groups, drawn from the seed) and ``--no-validation`` (the validation
fold trained on too, only ``_last``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from models.checkpoints import read_checkpoint
from training.datasets.classifier_dataset import FoldsError, identity_groups_of, read_folds
from training.pipelines.train_classifier import TrainOptions, split_rows, train
from training.tools.config import load_config

TINY = ["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=64", "batch_size=2", "workers=0",
        "drop_path_rate=0", "tensorboard_images=0", "epochs=1", "batches_per_epoch=2", "augment=false"]
NAME = "DeepFakeClassifier_tf_efficientnet_lite0_111"


def _rows(root, *overrides, seed=111, **kwargs):
    options = TrainOptions(data_dir=str(root), fold=1, test_fold=0, overrides=tuple(TINY) + overrides, **kwargs)
    return split_rows(options, load_config(None, options.overrides), seed)


def test_subset_takes_whole_identity_groups_and_leaves_val_and_test_folds_alone(four_fold_root):
    folds = read_folds(four_fold_root)
    group_of = identity_groups_of(four_fold_root, folds)
    all_train, all_val, _, used_all = _rows(four_fold_root)
    assert used_all["train_videos_used"] == used_all["train_videos_available"] == 6
    for n_videos, expected in ((3, 3), (5, 3), (6, 6), (100, 6)):
        train_rows, val_rows, _, used = _rows(four_fold_root, f"train_videos={n_videos}")
        videos = set(train_rows["video"])
        assert len(videos) == used["train_videos_used"] == expected, n_videos
        # closed under identity groups: every training video of a chosen group is in
        for group in {group_of[v] for v in videos}:
            assert {v for v in set(all_train["video"]) if group_of[v] == group} <= videos
        assert set(train_rows["fold"]) <= {2, 3}  # never the validation or test fold
        pd.testing.assert_frame_equal(val_rows, all_val)  # validation rows untouched
        # every crop of a chosen video is kept, in folds.csv's order
        pd.testing.assert_frame_equal(train_rows, all_train[all_train["video"].isin(videos)].reset_index(drop=True))


def test_subset_is_drawn_from_the_seed(four_fold_root):
    picks = {seed: tuple(sorted(set(_rows(four_fold_root, "train_videos=3", seed=seed)[0]["video"])))
             for seed in range(8)}
    assert picks[3] == tuple(sorted(set(_rows(four_fold_root, "train_videos=3", seed=3)[0]["video"])))
    assert len(set(picks.values())) == 2  # both training groups get drawn by some seed


def test_subset_smaller_than_any_group_is_a_clear_error(four_fold_root):
    with pytest.raises(FoldsError, match=r"smallest identity group of the training folds \(3 videos\); pass at least 3"):
        _rows(four_fold_root, "train_videos=2")


def test_no_validation_trains_on_every_fold_but_the_test_fold(four_fold_root):
    train_rows, _, _, used = _rows(four_fold_root, no_validation=True)
    assert set(train_rows["fold"]) == {1, 2, 3} and used["train_videos_used"] == 9
    folds = read_folds(four_fold_root)
    assert len(train_rows) == int((folds["fold"] != 0).sum())  # every frame of the validation fold too


def test_training_records_the_subset_and_no_validation_writes_only_last(four_fold_root, tmp_path):
    options = TrainOptions(data_dir=str(four_fold_root), fold=1, test_fold=0, seed=111, progress=False,
                           overrides=tuple(TINY) + ("train_videos=7",), no_validation=True,
                           output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs"))
    result = train(options)
    assert result.epochs_run == [0]  # epochs count from 0
    weights = tmp_path / "weights"
    names = {p.name for p in weights.iterdir()}
    assert f"{NAME}_last" in names and f"{NAME}_best" not in names
    run = json.loads((weights / f"{NAME}_args.json").read_text())["run"]
    # 9 videos in folds 1-3; whole groups of 3 that fit in 7: 6
    assert run["train_videos_available"] == 9 and run["train_videos_used"] == 6
    assert len(run["train_identity_groups"]) == 2 and run["no_validation"] is True
    last = read_checkpoint(weights / f"{NAME}_last")
    assert last["run"]["train_videos_used"] == 6 and last["config"]["train_videos"] == 7
