"""The face-crop geometry: margin, isotropic resize, padding, and the winner's integer arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from core.geometry import (
    centre_crop_offset,
    crop_box,
    crop_face,
    face_to_model_input,
    isotropic_resize,
    pad_to_original,
    pad_to_square,
    region_box,
)


def test_crop_adds_a_third_of_the_box_and_clips():
    frame = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3)
    assert crop_box([100, 50, 160, 110], frame.shape) == (80, 30, 180, 130)
    assert crop_box([0, 0, 90, 60], frame.shape) == (0, 0, 120, 80)
    assert crop_box([250, 150, 299, 199], frame.shape) == (234, 134, 300, 200)
    crop = crop_face(frame, [100, 50, 160, 110])
    assert crop.shape == (100, 100, 3) and crop[0, 0, 0] == frame[30, 80, 0]


def test_isotropic_resize_and_padding_keep_aspect_and_centre():
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    down = isotropic_resize(image, 40)
    up = isotropic_resize(image, 300)
    assert down.shape == (20, 40, 3) and up.shape == (150, 300, 3)
    square = pad_to_square(down, 40)
    assert square.shape == (40, 40, 3)
    assert square[:10].max() == 0 and square[30:].max() == 0 and square[10:30].min() == 200
    model_input = face_to_model_input(image, 64)
    assert model_input.shape == (64, 64, 3) and model_input[32, 32, 0] == 200 and model_input[0, 32, 0] == 0


def _winner_crop(frame, half_box):
    """The DFDC winner's crop of a half-resolution box, as its predictor and preprocessing wrote it."""
    xmin, ymin, xmax, ymax = [int(b * 2) for b in half_box]
    p_h, p_w = (ymax - ymin) // 3, (xmax - xmin) // 3
    return frame[max(ymin - p_h, 0):ymax + p_h, max(xmin - p_w, 0):xmax + p_w]


def test_crop_is_the_winners_integer_arithmetic():
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        x1, y1 = rng.uniform(-30, 900), rng.uniform(-30, 500)
        half_box = np.array([x1, y1, x1 + rng.uniform(5, 400), y1 + rng.uniform(5, 400)], dtype=np.float32)
        full_box = half_box / np.float32(0.5)  # what FaceDetector returns at scale 0.5
        np.testing.assert_array_equal(crop_face(frame, full_box), _winner_crop(frame, half_box))
    # every box size: int(w * (1 / 3)) is w // 3
    assert all(int(w * (1 / 3)) == w // 3 for w in range(20000))


def test_truncated_isotropic_resize_is_the_winners():
    import cv2

    def winner(img, size):  # the winner's arithmetic: the longer side (height when equal) = size
        h, w = img.shape[:2]
        if max(w, h) == size:
            return img
        if w > h:
            scale = size / w
            h, w = h * scale, size
        else:
            scale = size / h
            w, h = w * scale, size
        return cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)

    rng = np.random.default_rng(0)
    differs = 0
    for h in range(40, 420, 9):
        for w in (h - 1, h, h + 1, int(h * 0.75), int(h * 1.3)):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            np.testing.assert_array_equal(isotropic_resize(image, 224, rounding="truncate"), winner(image, 224))
            differs += isotropic_resize(image, 224).shape != winner(image, 224).shape
    assert differs > 10  # the default (rounded) geometry is a different one
    with pytest.raises(ValueError, match="truncate"):
        isotropic_resize(np.zeros((10, 20, 3), np.uint8), 30, rounding="floor")


def test_region_of_a_track_is_its_boxes_union_with_the_crop_margin():
    shape = (200, 300, 3)
    boxes = [[100, 50, 160, 110, 0.99], [120, 40, 170, 100, 0.98], [110, 60, 150, 120, 0.97]]
    # union 100, 40, 170, 120 (70 x 80): a third of that on each side, clipped to the frame
    assert region_box(boxes, shape) == crop_box([100, 40, 170, 120], shape) == (77, 14, 193, 146)
    assert region_box(boxes[:1], shape) == crop_box(boxes[0], shape)
    with pytest.raises(ValueError):
        region_box([], shape)


def test_a_centre_cropped_frame_is_padded_back_where_it_was_cut_from():
    original = np.random.default_rng(0).integers(1, 256, (480, 854, 3), dtype=np.uint8)
    # FF++ Face2Face: 854 -> 832 wide about the centre; an odd difference leaves the extra pixel right/below
    for height, width, offset in ((480, 832, (11, 0)), (467, 839, (7, 6)), (480, 854, (0, 0))):
        assert centre_crop_offset((height, width, 3), original.shape) == offset
        left, top = offset
        padded = pad_to_original(original[top:top + height, left:left + width], original.shape, offset)
        assert padded.shape == original.shape
        inside = np.zeros(original.shape[:2], bool)
        inside[top:top + height, left:left + width] = True
        assert np.array_equal(padded[inside], original[inside]) and not padded[~inside].any()
        box = [300, 100, 420, 260]  # the original's box cuts the same pixels from both
        assert np.array_equal(crop_face(padded, box), crop_face(original, box))
    same = original[:, :]
    assert pad_to_original(same, original.shape, (0, 0)) is same
    # 32 px or more smaller, larger, or smaller in one way and larger in the other: no known place
    for shape in ((480, 822), (448, 854), (480, 856), (482, 840), (240, 427)):
        assert centre_crop_offset(shape, original.shape) is None
    with pytest.raises(ValueError, match="does not fit"):
        pad_to_original(original[:, :850], original.shape, (11, 0))  # ends 7 px past 854
