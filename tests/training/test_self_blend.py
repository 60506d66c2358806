"""Self-blended fakes (SBI): the transform acts only inside its mask, the dataset makes them from reals."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.input_spec import InputSpec
from datasets.layout import DataLayout, parse_crop_name
from training.datasets.classifier_dataset import (
    DeepFakeClassifierDataset,
    FoldsError,
    read_folds,
    split_folds,
)
from training.tools.config import ConfigError, load_config
from training.tools.show_augmentations import augmentation_grid
from training.transforms.self_blend import SelfBlendParams, face_size, self_blend


def _real_crops_with_landmarks(root, count: int):
    layout = DataLayout(root)
    folds = read_folds(root)
    found = []
    for row in folds[folds["label"] == 0].itertuples():
        face = parse_crop_name(str(row.file))[1]
        points = layout.landmarks68_path(row.video, row.frame, face)
        if points.is_file():
            image = cv2.cvtColor(cv2.imread(str(layout.crop_path(row.video, row.frame, face))), cv2.COLOR_BGR2RGB)
            found.append((image, np.load(points).astype(np.float32)))
        if len(found) == count:
            break
    assert len(found) == count, f"fewer than {count} real crops with 68 landmarks in {root}"
    return found


@pytest.mark.parametrize("seed", range(6))
def test_a_self_blended_crop_differs_from_its_source_only_inside_the_mask(preprocessed_root, seed):
    image, landmarks = _real_crops_with_landmarks(preprocessed_root, 6)[seed]
    rng = np.random.default_rng(seed)
    params = SelfBlendParams.draw(rng)
    out, mask = self_blend(image, landmarks, params, rng)
    assert out.shape == image.shape and out.dtype == np.uint8 and mask.shape == image.shape[:2]
    outside = mask == 0
    assert outside.any() and (~outside).any()
    assert np.array_equal(out[outside], image[outside])  # not one pixel changes outside the mask
    inside = mask > 0.5 * params.ratio
    change = np.abs(out.astype(int) - image.astype(int)).sum(axis=2)
    assert change[inside].mean() > 3, f"the face hardly changed inside the mask ({change[inside].mean():.2f})"
    # the mask sits on the face: its weight is centred near the landmarks' centre, within a face size
    ys, xs = np.nonzero(mask)
    centre = np.array([np.average(xs, weights=mask[ys, xs]), np.average(ys, weights=mask[ys, xs])])
    assert np.linalg.norm(centre - landmarks.mean(axis=0)) < 0.25 * face_size(landmarks)
    assert mask.max() <= params.ratio + 1e-6


def test_the_dataset_makes_self_blended_fakes_from_reals_only(preprocessed_root):
    folds = read_folds(preprocessed_root)
    reals_only = folds[folds["label"] == 0]
    with pytest.raises(FoldsError, match="only REAL"):
        split_folds(reals_only, 0)
    train, val = split_folds(reals_only, 0, fakes="self_blended")
    dataset = DeepFakeClassifierDataset(preprocessed_root, train, "train", InputSpec(size_px=64), seed=1, fakes="self_blended")
    labels = [item[3] for item in dataset.items]
    assert labels.count(0.0) == labels.count(1.0) == len(train)  # every real, and as many blended fakes
    blended = next(i for i, item in enumerate(dataset.items) if item[5])
    sample = dataset.read_sample(blended, dataset.sample_rng(blended))
    assert sample.label == 1.0 and sample.cutout == "self_blend"
    source = next(i for i, item in enumerate(dataset.items) if not item[5] and item[:3] == dataset.items[blended][:3])
    plain = dataset.read_sample(source, dataset.sample_rng(source), hardcore=False)
    assert plain.label == 0.0 and not np.array_equal(plain.image, sample.image)
    assert dataset[blended]["label"].item() == pytest.approx(0.99)  # smoothed like any fake
    # validation with no fake video gets the same reals as self-blended fakes
    val_set = DeepFakeClassifierDataset(preprocessed_root, val, "val", InputSpec(size_px=64), seed=1, fakes="self_blended")
    assert [item[3] for item in val_set.items].count(1.0) == len(val)
    # both: half the data's fakes, half self-blended
    train_all, _ = split_folds(folds, 0)
    both = DeepFakeClassifierDataset(preprocessed_root, train_all, "train", InputSpec(size_px=64), seed=1, fakes="both")
    n_real = int((train_all["label"] == 0).sum())
    kinds = [(item[3], item[5]) for item in both.items]
    assert kinds.count((0.0, False)) == n_real
    assert kinds.count((1.0, False)) == (n_real + 1) // 2 and kinds.count((1.0, True)) == n_real // 2


def test_the_fake_source_is_a_checked_config_value():
    assert load_config(None, ["fakes=self_blended"]).fakes == "self_blended"
    with pytest.raises(ConfigError, match="fakes 'sbi' is not one of"):
        load_config(None, ["fakes=sbi"])


def test_the_augmentation_grid_shows_self_blended_examples(preprocessed_root):
    grid = augmentation_grid(preprocessed_root, rows=2, tile_px=64, pipeline_columns=1)
    # crop, 3 landmark cutouts, 4 hull halves, bit mask, self-blended, SBI mask, 1 pipeline column
    assert grid.shape[1] == 12 * 64
