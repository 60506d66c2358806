"""The input contract: a spec round-trips through plain values, and the one conversion of face crops (and
clips) into model input places and normalises them as the spec says, on a real photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data
from torchvision.transforms import v2 as tv_transforms

from core.geometry import face_to_model_input
from core.input_spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    InputSpec,
    normalize_batch,
    place_clip,
    place_face,
    sample_to_uint8_tensor,
    to_model_batch,
)

PHOTO = data.chelsea()  # 300 x 451 RGB: not square, so the padding and the rounding both act


def test_a_spec_round_trips_through_json():
    spec = InputSpec(size_px=112, resize_rounding="truncate", mean=KINETICS_MEAN, std=KINETICS_STD,
                     frames_per_clip=16, frame_step=2, layout="NCTHW")
    plain = json.loads(json.dumps(spec.to_dict()))
    assert InputSpec.from_dict(plain) == spec
    assert hash(InputSpec.from_dict(plain)) == hash(spec)  # usable as a key (the predictor groups by it)
    assert InputSpec(224).to_dict()["mean"] == list(IMAGENET_MEAN)


@pytest.mark.parametrize("bad, message", [
    ({"size_px": 0}, "size_px must be a positive integer"),
    ({"size_px": 64, "resize_rounding": "ceil"}, "resize_rounding 'ceil'"),
    ({"size_px": 64, "frames_per_clip": 8}, "NCHW .* takes 1 frame"),
    ({"size_px": 64, "layout": "NHWC"}, "layout 'NHWC'"),
    ({"size_px": 64, "std": [0.2, 0.0, 0.2]}, "std > 0"),
    ({"size_px": 64, "colour": "bgr"}, "unknown field.*colour"),
    ({"resize": "isotropic_pad"}, "lacks size_px"),
])
def test_a_bad_spec_is_refused_with_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        InputSpec.from_dict(bad)


@pytest.mark.parametrize("rounding", ["round", "truncate"])
def test_placing_is_the_geometry_of_core(rounding):
    spec = InputSpec(size_px=97, resize_rounding=rounding)
    placed = place_face(PHOTO, spec)
    assert placed.shape == (97, 97, 3) and placed.dtype == np.uint8
    np.testing.assert_array_equal(placed, face_to_model_input(PHOTO, 97, rounding))
    assert not placed[0].any() and placed[48].any()  # a landscape photo: zero rows above, content in the middle


@pytest.mark.parametrize("mean, std", [(IMAGENET_MEAN, IMAGENET_STD), (KINETICS_MEAN, KINETICS_STD)])
def test_normalisation_equals_torchvision_for_images_and_clips(mean, std):
    spec = InputSpec(size_px=64, mean=mean, std=std)
    placed = place_face(PHOTO, spec)
    batch = to_model_batch([placed, placed[::-1].copy()], spec)
    reference = tv_transforms.Normalize(mean, std)(torch.from_numpy(placed).permute(2, 0, 1).float() / 255)
    assert batch.shape == (2, 3, 64, 64) and batch.is_contiguous()
    torch.testing.assert_close(batch[0], reference, rtol=0, atol=1e-6)
    # a clip: (N, 3, T, H, W), every frame normalised like the image
    clip_spec = spec.replace(frames_per_clip=3, layout="NCTHW")
    frames = [PHOTO, PHOTO[:, ::-1], PHOTO[:200]]
    clip = place_clip(frames, clip_spec)
    clips = to_model_batch([clip], clip_spec)
    assert clip.shape == (3, 64, 64, 3) and clips.shape == (1, 3, 3, 64, 64)
    for t, frame in enumerate(frames):
        torch.testing.assert_close(clips[0, :, t], to_model_batch([place_face(frame, spec)], spec)[0], rtol=0, atol=0)
    loader_sample = sample_to_uint8_tensor(clip, clip_spec)
    assert loader_sample.shape == (3, 3, 64, 64) and loader_sample.dtype == torch.uint8
    torch.testing.assert_close(normalize_batch(loader_sample[None], clip_spec), clips, rtol=0, atol=0)


def test_a_clip_of_the_wrong_length_or_shape_is_refused():
    spec = InputSpec(size_px=32, frames_per_clip=4, layout="NCTHW")
    with pytest.raises(ValueError, match="clip of 2 frames given to a model that takes 4"):
        place_clip([PHOTO, PHOTO], spec)
    with pytest.raises(ValueError, match="NCTHW model takes 4-dimensional samples"):
        to_model_batch([place_face(PHOTO, spec)], spec)
