"""folds.csv splitting, per-epoch fake subsampling, reproducible samples and broken-crop replacement."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from core.input_spec import InputSpec
from datasets.layout import DataLayout
from tests.conftest import copy_tree
from training.datasets.classifier_dataset import (
    DeepFakeClassifierDataset,
    FoldsError,
    read_folds,
    split_folds,
)

SIZE = 64


@pytest.fixture(scope="module")
def folds(preprocessed_root):
    return read_folds(preprocessed_root)


def test_split_trains_on_other_folds_and_validates_every_20th_frame(folds):
    train, val = split_folds(folds, 0)
    assert set(train["fold"]) == set(folds["fold"]) - {0} and set(val["fold"]) == {0}
    assert (val["frame"] % 20 == 0).all()
    _, full = split_folds(folds, 0, full_val=True)
    assert len(full) == (folds["fold"] == 0).sum() > len(val)


def test_test_fold_is_left_out_of_training_and_validation(folds):
    third = folds[folds["fold"] == 1].assign(fold=2, video=lambda f: "t_" + f["video"])
    three = pd.concat([folds, third], ignore_index=True)
    train, val = split_folds(three, 0, test_fold=2)
    assert set(train["fold"]) == {1} and set(val["fold"]) == {0}
    assert not set(train["video"]) & set(third["video"]) and not set(val["video"]) & set(third["video"])
    assert len(train) == (folds["fold"] == 1).sum()
    with pytest.raises(FoldsError, match="is the validation fold"):
        split_folds(three, 0, test_fold=0)
    with pytest.raises(FoldsError, match=r"no rows with fold 5; .*--test-fold"):
        split_folds(three, 0, test_fold=5)
    with pytest.raises(FoldsError, match="or the test fold 1, nothing is left to train on"):
        split_folds(folds, 0, test_fold=1)
    from training.pipelines.train_classifier import build_parser

    assert build_parser().parse_args(["--data-dir", "D", "--fold", "1", "--test-fold", "0"]).test_fold == 0


def test_fold_errors_are_clear(folds, tmp_path):
    with pytest.raises(FoldsError, match=r"no rows with fold 7; available folds: \[0, 1\]"):
        split_folds(folds, 7)
    with pytest.raises(FoldsError, match="nothing is left to train on"):
        split_folds(folds.assign(fold=0), 0)
    only_odd_frames = folds.assign(frame=folds["frame"] // 10 * 10 + 10 * (folds["frame"] % 20 == 0))
    with pytest.raises(FoldsError, match="--full-val"):
        split_folds(only_odd_frames, 0)
    with pytest.raises(FoldsError, match="preprocess_data.sh"):
        read_folds(tmp_path)
    folds.drop(columns=["fold"]).to_csv(tmp_path / "folds.csv", index=False)
    with pytest.raises(FoldsError, match=r"lacks the columns \['fold'\]"):
        read_folds(tmp_path)


def test_each_epoch_balances_fakes_to_reals(preprocessed_root, folds):
    train, _ = split_folds(folds, 0)
    n_real = int((train["label"] == 0).sum())
    assert (train["label"] == 1).sum() > n_real
    dataset = DeepFakeClassifierDataset(preprocessed_root, train, "train", InputSpec(size_px=SIZE), seed=3)
    chosen = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        labels = [item[3] for item in dataset.items]
        assert labels.count(0.0) == labels.count(1.0) == n_real
        chosen.append(tuple(item for item in dataset.items if item[3] == 1.0))
    assert len(set(chosen)) > 1, "the fakes must be redrawn per epoch"
    dataset.set_epoch(2)
    assert tuple(i for i in dataset.items if i[3] == 1.0) == chosen[2]


def test_samples_are_reproducible_and_labels_smoothed(preprocessed_root, folds):
    train, _ = split_folds(folds, 0)
    dataset = DeepFakeClassifierDataset(preprocessed_root, train, "train", InputSpec(size_px=SIZE), seed=5)
    dataset.set_epoch(1)
    first = [dataset[i] for i in range(4)]
    again = DeepFakeClassifierDataset(preprocessed_root, train, "train", InputSpec(size_px=SIZE), seed=5)
    again.set_epoch(1)
    for a, b in zip(first, [again[i] for i in range(4)]):
        assert torch.equal(a["image"], b["image"]) and a["label"] == b["label"]
    assert {round(float(s["label"]), 4) for s in first} <= {0.01, 0.99}
    assert first[0]["image"].shape == (3, SIZE, SIZE)
    again.set_epoch(2)
    assert any(not torch.equal(dataset[i]["image"], again[i]["image"]) for i in range(4))


def test_broken_and_missing_crops_are_logged_and_replaced(preprocessed_root, tmp_path, caplog):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    layout = DataLayout(root)
    rows = pd.read_csv(layout.folds_csv)
    _, val = split_folds(rows, 0)
    dataset = DeepFakeClassifierDataset(root, val, "val", InputSpec(size_px=SIZE))
    broken, missing = dataset.items[0], dataset.items[1]
    layout.crop_path(broken[0], broken[1], broken[2]).write_bytes(b"not a png")
    layout.crop_path(missing[0], missing[1], missing[2]).unlink()
    with caplog.at_level(logging.WARNING):
        samples = [dataset[i] for i in range(len(dataset))]
    assert "cannot be decoded" in caplog.text and "is missing" in caplog.text
    assert samples[0]["index"] not in (0, 1) and samples[1]["index"] not in (0, 1)
    assert all(s["image"].shape == (3, SIZE, SIZE) for s in samples)
    # with every crop gone it stops with a clear error instead of looping
    for video, frame, face, *_ in dataset.items[2:]:
        layout.crop_path(video, frame, face).unlink()
    with pytest.raises(RuntimeError, match="could not be read"):
        dataset[0]
