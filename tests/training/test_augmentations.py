"""Each train transform really acts when forced (albumentations 2 ignores old argument names silently),
the pipeline holds the recipe's probabilities, and the geometry is the inference geometry."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from core.geometry import face_to_model_input, isotropic_resize
from core.input_spec import InputSpec
from datasets.layout import DataLayout, parse_crop_name
from training.transforms.augmentations import (
    RESIZE_INTERPOLATIONS,
    IsotropicResize,
    PadToSquare,
    create_val_transforms,
    image_to_tensor,
    image_to_uint8_tensor,
    normalize_batch,
    tensor_to_image,
    train_transform_list,
)

SIZE = 96
SPEC = InputSpec(size_px=SIZE)


@pytest.fixture(scope="module")
def crop(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    row = pd.read_csv(layout.folds_csv).iloc[0]
    frame, face = parse_crop_name(row["file"])
    image = cv2.imread(str(layout.crop_path(row["video"], frame, face)))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _leaf_transforms(spec):
    for transform in train_transform_list(spec):
        if isinstance(transform, A.OneOf):
            yield from transform.transforms
        else:
            yield transform


def _name(t):
    return type(t).__name__


@pytest.mark.parametrize("index", range(len(list(_leaf_transforms(SPEC)))))
def test_each_train_transform_changes_its_input(crop, index):
    transform = list(_leaf_transforms(SPEC))[index]
    transform.p = 1.0
    # colour and pixel transforms act on the resized, non-square face as in the pipeline
    source = crop if isinstance(transform, IsotropicResize) else isotropic_resize(crop, SIZE)
    changed = False
    for seed in range(3):  # a random parameter may land on identity once, not three times
        out = A.Compose([transform], seed=seed)(image=source)["image"]
        changed |= out.shape != source.shape or bool(np.any(out != source))
    assert changed, f"{_name(transform)} with p=1 left the image unchanged"


def test_pipeline_has_the_recipe_probabilities():
    transforms = train_transform_list(SPEC)
    probs = {_name(t): t.p for t in transforms if not isinstance(t, A.OneOf)}
    assert probs == {"ImageCompression": 0.5, "GaussNoise": 0.1, "GaussianBlur": 0.05, "HorizontalFlip": 0.5,
                     "PadToSquare": 1.0, "ToGray": 0.2, "Affine": 0.5}
    compression = transforms[0]
    assert tuple(compression.quality_range) == (60, 100)
    one_ofs = [t for t in transforms if isinstance(t, A.OneOf)]
    assert [len(o.transforms) for o in one_ofs] == [3, 3] and [o.p for o in one_ofs] == [1, 0.7]
    assert sorted(_name(t) for t in one_ofs[1].transforms) == ["FancyPCA", "HueSaturationValue",
                                                               "RandomBrightnessContrast"]
    pairs = [(t.interpolation_down, t.interpolation_up) for t in one_ofs[0].transforms]
    assert pairs == list(RESIZE_INTERPOLATIONS)


def test_val_geometry_is_the_inference_geometry(crop):
    out = create_val_transforms(SPEC)(image=crop)["image"]
    assert out.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(out, face_to_model_input(crop, SIZE))
    padded = PadToSquare(SIZE)(image=isotropic_resize(crop, SIZE))["image"]
    assert padded.shape == (SIZE, SIZE, 3) and (padded[:, 0] == 0).all()  # portrait crops pad left/right


def test_loader_tensor_normalised_on_device_equals_model_input(crop):
    small = isotropic_resize(crop, SIZE)
    raw = image_to_uint8_tensor(small)
    assert raw.dtype == torch.uint8 and raw.shape == (3,) + small.shape[:2]
    np.testing.assert_array_equal(tensor_to_image(raw), small)
    torch.testing.assert_close(normalize_batch(raw[None], SPEC)[0], image_to_tensor(small, SPEC), rtol=0, atol=1e-5)
