"""Face tracks: box overlap and the gate on detector boxes."""

from __future__ import annotations

import numpy as np
import pytest

from faces.tracks import TrackOptions, auto_min_faces, box_iou, link_faces


def test_box_iou_and_gate_on_detector_boxes():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], dtype=float)
    iou = box_iou(boxes, boxes)
    assert np.allclose(np.diag(iou), 1) and iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0
    # a small face moving by half its side has IoU 1/3 with itself but stays one track; a face of twice
    # the side at the same place does not join it (the size gate)
    frames = [0, 1, 2, 2]
    track = link_faces(frames, np.array([[0, 0, 10, 10], [5, 0, 15, 10], [5, 0, 15, 10], [0, 0, 20, 20]]),
                       TrackOptions(min_iou=0.5, max_shift=0.6, min_faces=1))
    assert list(track) == [0, 0, 0, 1]
    assert auto_min_faces(32) == 4 and auto_min_faces(8) == 2 and auto_min_faces(1) == 1
