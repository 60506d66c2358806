"""faces.mtcnn_cascade: MTCNN's cascade with integral-image area resampling, bit for bit facenet-pytorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.video import iter_frames
from datasets.layout import DataLayout
from faces import mtcnn_cascade
from faces.mtcnn import THRESHOLDS, FaceDetector, resize_for_detector
from tests.conftest import same_detections


def _frames(path, count: int, every: int = 25) -> np.ndarray:
    return np.stack([frame for _, frame in iter_frames(path, every=every)][:count])


def _layout(t: torch.Tensor) -> str:
    return "channels_last" if t.is_contiguous(memory_format=torch.channels_last) else (
        "contiguous" if t.is_contiguous() else "other")


def _real_or_sample_videos(sample_root, real_small_or_none):
    videos = [e.path for e in DataLayout(sample_root).scan()[0] if not e.is_fake][:1]
    if real_small_or_none is not None:  # 1080p DFDC, portrait DFDC and an FF++ clip when present
        videos += [real_small_or_none / "dfdc_train_part_0" / name
                   for name in ("lynaeydofd.mp4", "brtujopkby.mp4", "634.mp4")]
    return videos


def test_area_resampling_equals_torch_on_real_frames(sample_root, real_small_or_none):
    video = _real_or_sample_videos(sample_root, real_small_or_none)[-1]
    frames = _frames(video, 2)
    torch_frames = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # facenet-pytorch's input tensor
    integrals = mtcnn_cascade.integral_images(frames)
    height, width = frames.shape[1:3]
    for scale in mtcnn_cascade.pyramid_scales(height, width, 20, 0.709):
        size = (int(height * scale + 1), int(width * scale + 1))
        expected = F.interpolate(torch_frames, size=size, mode="area")
        got = mtcnn_cascade.resample_frames(integrals, *size)
        assert torch.equal(got, expected), scale
        assert _layout(got) == _layout(expected) == "channels_last"
    # crops of many sizes and places, some at the frame's edges, to 24 and 48 px
    rng = np.random.default_rng(7)
    top = rng.integers(0, height - 2, 60)
    left = rng.integers(0, width - 2, 60)
    bottom = np.minimum(height, top + rng.integers(1, 400, 60))
    right = np.minimum(width, left + rng.integers(1, 400, 60))
    index = rng.integers(0, len(frames), 60)
    for side in (24, 48):
        got = mtcnn_cascade.resample_crops(integrals, index, top, bottom, left, right, side)
        expected = torch.cat([F.interpolate(torch_frames[i, :, t:b, lft:r].unsqueeze(0), size=(side, side), mode="area")
                              for i, t, b, lft, r in zip(index, top, bottom, left, right)])
        assert torch.equal(got, expected)
        assert _layout(got) == _layout(expected) == "contiguous"


@pytest.mark.parametrize("purpose,face_order,batch_size", [
    ("inference", "area", 1), ("inference", "score", 8), ("preprocess", "score", 8), ("landmarks", "area", 1)])
def test_detector_boxes_scores_and_landmarks_equal_facenet_pytorch(sample_root, real_small_or_none, purpose,
                                                                   face_order, batch_size):
    settings = dict(device="cpu", batch_size=batch_size, face_order=face_order, resize="pil")
    fast = FaceDetector(THRESHOLDS[purpose], fast_resampling=True, **settings)
    stock = FaceDetector(THRESHOLDS[purpose], fast_resampling=False, **settings)
    assert fast.fast_resampling and not stock.fast_resampling
    compared = 0
    for video in _real_or_sample_videos(sample_root, real_small_or_none):
        compared += same_detections(fast, stock, list(_frames(video, 8, every=37)))
    assert compared >= 8  # faces were found, so boxes were really compared


def test_cascade_matches_the_library_on_a_small_detector_input(real_small_or_none, sample_root):
    # a frame halved twice (the smallest pyramid) and a batch whose frames have no face at all
    video = _real_or_sample_videos(sample_root, real_small_or_none)[-1]
    frame = resize_for_detector(_frames(video, 1)[0], 0.25, "pil")
    blank = np.full((3,) + frame.shape, 128, dtype=np.uint8)
    stock = FaceDetector(THRESHOLDS["inference"], device="cpu", fast_resampling=False)
    for batch in (frame[None], blank):
        got = mtcnn_cascade.detect(batch, stock.mtcnn)
        expected = stock.mtcnn.detect(batch, landmarks=True)
        for kind_got, kind_expected in zip(got, expected):  # no face: None boxes, [None] scores
            for a, b in zip(kind_got, kind_expected):
                assert (a is None) == (b is None)
                if b is not None:
                    assert np.array_equal(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32),
                                          equal_nan=True)
    assert all(boxes is None for boxes in mtcnn_cascade.detect(blank, stock.mtcnn)[0])


def test_cascade_refuses_frames_that_are_not_uint8_rgb():
    stock = FaceDetector(THRESHOLDS["inference"], device="cpu", fast_resampling=False)
    with pytest.raises(ValueError, match="uint8"):
        mtcnn_cascade.detect(np.zeros((1, 64, 64, 3), dtype=np.float32), stock.mtcnn)


def test_channels_last_crops_move_boxes_by_rounding_only(sample_root, real_small_or_none):
    # the default preset's faster stages 2 and 3: the same faces, boxes within float rounding of the exact ones
    settings = dict(device="cpu", batch_size=8, resize="cv2")
    fast = FaceDetector(THRESHOLDS["inference"], channels_last_crops=True, **settings)
    exact = FaceDetector(THRESHOLDS["inference"], **settings)
    assert fast.channels_last_crops and not exact.channels_last_crops
    assert not FaceDetector(device="cpu", fast_resampling=False, channels_last_crops=True).channels_last_crops
    compared, differ = 0, 0
    for video in _real_or_sample_videos(sample_root, real_small_or_none):
        frames = list(_frames(video, 8, every=37))
        for got, expected in zip(fast.detect(frames), exact.detect(frames)):
            assert (got is None) == (expected is None)
            if got is not None:
                assert got.shape == expected.shape
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-2)
                compared += len(got)
                differ += int(not np.array_equal(got, expected))
    assert compared >= 8
    if real_small_or_none is not None:  # on real clips the layouts' rounding does show
        assert differ > 0


def test_a_box_left_empty_by_clipping_is_handed_to_the_library():
    # facenet-pytorch drops such a crop and misaligns its rows; the cascade then lets the library decide
    frames = np.full((1, 60, 80, 3), 90, dtype=np.uint8)
    integrals = mtcnn_cascade.integral_images(frames)
    outside = torch.tensor([[-50.0, -50.0, -10.0, -10.0, 0.9]])
    with pytest.raises(mtcnn_cascade._EmptyCrop):
        mtcnn_cascade._crops(integrals, outside, torch.zeros(1, dtype=torch.int64), 24, False)
    inside = torch.tensor([[10.0, 10.0, 40.0, 40.0, 0.9]])
    crop = mtcnn_cascade._crops(integrals, inside, torch.zeros(1, dtype=torch.int64), 24, False)
    assert crop.shape == (1, 3, 24, 24)
    assert torch.allclose(crop, torch.full_like(crop, (90 - 127.5) * 0.0078125))
