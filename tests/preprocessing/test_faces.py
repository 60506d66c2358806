"""Face-crop geometry and the MTCNN wrapper (real MTCNN on real frames)."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.faces import (
    FaceDetector,
    crop_box,
    crop_face,
    detector_scale,
    face_to_model_input,
    isotropic_resize,
    pad_to_square,
)
from preprocessing.video import read_sampled_frames


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detector_scale_rule():
    assert detector_scale(280, 200) == 2.0
    assert detector_scale(640, 480) == 1.0 and detector_scale(1000, 562) == 1.0
    assert detector_scale(1280, 720) == 0.5 and detector_scale(1080, 1920) == 0.33
    assert detector_scale(1920, 1080) == 0.33 and detector_scale(1900, 1000) == 0.5


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


@pytest.mark.real_data
def test_detector_boxes_are_in_full_resolution_pixels(real_small):
    _, frames = read_sampled_frames(real_small / "dfdc_train_part_0" / "lynaeydofd.mp4", 3)
    detector = FaceDetector()
    at_auto = detector.detect(frames)  # 1920x1080 -> 0.33x
    at_full, points = detector.detect(frames, scale=1.0, landmarks=True)
    for auto_boxes, full_boxes, full_points in zip(at_auto, at_full, points):
        assert auto_boxes is not None and full_boxes is not None
        assert auto_boxes.shape[1] == 5 and auto_boxes[0, 4] >= 0.95
        assert _iou(auto_boxes[0], full_boxes[0]) > 0.7
        x1, y1, x2, y2 = full_boxes[0, :4]
        assert full_points.shape[1:] == (5, 2)
        assert (full_points[0, :, 0] > x1).all() and (full_points[0, :, 0] < x2).all()
        assert (full_points[0, :, 1] > y1).all() and (full_points[0, :, 1] < y2).all()


@pytest.mark.real_data
def test_detector_reports_no_face_as_none(real_small):
    _, frames = read_sampled_frames(real_small / "dfdc_train_part_0" / "519.mp4", 2)
    blank = [np.zeros_like(frames[0]), frames[1]]
    boxes = FaceDetector().detect(blank)
    assert boxes[0] is None and boxes[1] is not None
