"""The face-detector registry: MTCNN as its first entry, unknown names refused, and a toy detector
registered by a test that makes preprocessing stage 1's boxes of real generated videos."""

from __future__ import annotations

import json

import pytest
import torch

from datasets.layout import DataLayout
from faces.detectors import DETECTORS, DetectorSettings, build_detector
from faces.mtcnn import THRESHOLDS, THRESHOLDS_INFERENCE, THRESHOLDS_LANDMARKS, FaceDetector, build_mtcnn
from preprocessing import detect_original_faces as stage1
from preprocessing.runner import THREADS_PER_WORKER
from tests.conftest import copy_tree, registered

TOY = "mtcnn-full-scale"


class FixedScaleMTCNN:
    """A toy detector family: MTCNN at one input scale, whatever scale the caller asks for."""

    def __init__(self, settings: DetectorSettings, scale: float):
        self.inner = build_mtcnn(settings)
        self.scale = scale
        self.device, self.batch_size = self.inner.device, self.inner.batch_size

    def detect(self, frames, scale="auto", landmarks=False):
        return self.inner.detect(frames, scale=self.scale, landmarks=landmarks)


@pytest.fixture
def toy_detector():
    """``TOY`` registered for the test (MTCNN at full scale), removed again after."""
    with registered(DETECTORS, TOY, lambda settings: FixedScaleMTCNN(settings, 1.0)):
        yield TOY
    assert TOY not in DETECTORS
    stage1._detector.cache_clear()  # the stage keeps its detector per process: not this one any more


def test_mtcnn_is_built_with_the_thresholds_and_settings_of_its_purpose():
    assert DETECTORS.names()[0] == "mtcnn"
    landmarks = build_detector("mtcnn", DetectorSettings("landmarks", device="cpu", batch_size=1))
    assert isinstance(landmarks, FaceDetector)
    assert (landmarks.thresholds, landmarks.batch_size, landmarks.device) == (THRESHOLDS_LANDMARKS, 1, "cpu")
    inference = build_detector("mtcnn", DetectorSettings("inference", device="cpu", resize="pil", face_order="area"))
    assert (inference.thresholds, inference.resize, inference.face_order) == (THRESHOLDS_INFERENCE, "pil", "area")
    assert set(THRESHOLDS) == {"preprocess", "landmarks", "inference"}


def test_unknown_detectors_and_purposes_are_refused_with_the_known_ones_listed(sample_root, capsys):
    with pytest.raises(ValueError, match=r"unknown face detector 'retinaface'; known: mtcnn$"):
        build_detector("retinaface", DetectorSettings("preprocess"))
    with pytest.raises(ValueError, match="unknown detector purpose 'training'"):
        DetectorSettings("training")
    # at the edges: before any work
    with pytest.raises(ValueError, match="known: mtcnn"):
        stage1.detect_original_faces(sample_root, workers=1, progress=False, detector="retinaface")
    assert not (sample_root / "boxes").exists()
    with pytest.raises(SystemExit) as exit_info:
        stage1.main([str(sample_root), "--detector", "retinaface"])
    assert exit_info.value.code == 2 and "'mtcnn'" in capsys.readouterr().err


def test_a_registered_detector_makes_stage_1s_boxes_and_is_recorded_in_its_markers(sample_root, tmp_path,
                                                                                   toy_detector):
    root = copy_tree(sample_root, tmp_path / "data")
    layout = DataLayout(root)
    run = dict(workers=1, progress=False, device="cpu")
    summary = stage1.detect_original_faces(root, detector=toy_detector, **run)
    assert (summary.done, summary.failed) == (4, 0)

    reference = FaceDetector(THRESHOLDS["preprocess"], device="cpu", **stage1.RECIPES[stage1.DEFAULT_RECIPE])
    reals = [entry for entry in layout.scan()[0] if not entry.is_fake]
    at_stage_scale = []
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS_PER_WORKER)  # as the stage ran: float results depend on the thread count
    try:
        for entry in reals:
            boxes = json.loads(layout.boxes_path(entry.video_id).read_text())
            # the toy's boxes: MTCNN at full scale, not the stage's default 0.5
            assert boxes == stage1.boxes_to_json(stage1.detect_video_boxes(entry.path, reference, scale=1.0))
            at_stage_scale.append(boxes == stage1.boxes_to_json(stage1.detect_video_boxes(entry.path, reference)))
    finally:
        torch.set_num_threads(threads)
    assert not all(at_stage_scale)
    for entry in reals:
        marker = json.loads(layout.progress_path(stage1.STAGE_NAME, entry.video_id).read_text())
        assert marker["options"]["detector"] == toy_detector

    # the default detector again: other boxes, so every item is redone; its markers name no detector,
    # as the markers of runs before the option existed did
    summary = stage1.detect_original_faces(root, **run)
    assert (summary.done, summary.skipped) == (4, 0)
    for entry in reals:
        marker = json.loads(layout.progress_path(stage1.STAGE_NAME, entry.video_id).read_text())
        assert set(marker["options"]) == {"every", "all_frames", "scale", "recipe"}
    assert stage1.detect_original_faces(root, **run).skipped == 4
