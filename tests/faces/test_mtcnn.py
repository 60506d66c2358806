"""The MTCNN wrapper: scale rule, detector input, face order, boxes (real MTCNN on real frames)."""

from __future__ import annotations

import numpy as np
import pytest

from core.video import read_sampled_frames
from faces.mtcnn import FaceDetector, detector_scale, resize_for_detector


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


def test_pil_detector_input_is_the_winners_halving():
    from PIL import Image

    frame = np.random.default_rng(0).integers(0, 256, (541, 961, 3), dtype=np.uint8)
    winner = Image.fromarray(frame)
    winner = np.asarray(winner.resize([s // 2 for s in winner.size]))
    halved = resize_for_detector(frame, 0.5, "pil")
    assert halved.shape == (270, 480, 3)
    np.testing.assert_array_equal(halved, winner)
    assert not np.array_equal(resize_for_detector(frame, 0.5, "cv2"), winner)
    assert resize_for_detector(frame, 1.0, "pil") is frame


@pytest.mark.real_data
def test_face_order_by_area_or_score(real_small):
    # brtujopkby has two people: frames with two faces
    _, frames = read_sampled_frames(real_small / "dfdc_train_part_0" / "brtujopkby.mp4", 8)
    by_area = FaceDetector((0.7, 0.8, 0.8), device="cpu", face_order="area").detect(frames, scale=0.5)
    by_score = FaceDetector((0.7, 0.8, 0.8), device="cpu").detect(frames, scale=0.5)
    several = 0
    for area_boxes, score_boxes in zip(by_area, by_score):
        if area_boxes is None or len(area_boxes) < 2:
            continue
        several += 1
        areas = (area_boxes[:, 2] - area_boxes[:, 0]) * (area_boxes[:, 3] - area_boxes[:, 1])
        assert (np.diff(areas) <= 0).all() and (np.diff(score_boxes[:, 4]) <= 0).all()
        assert sorted(map(tuple, area_boxes.tolist())) == sorted(map(tuple, score_boxes.tolist()))
    assert several > 0
    with pytest.raises(ValueError, match="area"):
        FaceDetector(device="cpu", face_order="size")


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
