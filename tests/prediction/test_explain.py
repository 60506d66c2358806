"""Grad-CAM heatmaps: computed from the model, over the face, on real crops and a real trained Lite0."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch

from core.geometry import face_to_model_input
from core.input_spec import normalize_batch
from models.checkpoints import load_model
from prediction import cli, outputs
from prediction.explain import content_box, explain_faces, grad_cam
from prediction.options import resolve_options
from prediction.predictor import VideoPredictor


@pytest.fixture(scope="module")
def fake_crops(test_videos, generator_detector):
    """Face crops of the generated test fakes that the trained model calls FAKE (the map has something to show)."""
    metadata = json.loads((test_videos / "metadata.json").read_text())
    predictor = VideoPredictor([generator_detector], resolve_options(frames_per_video=4, device="cpu"),
                               keep_face_crops=True)
    crops = []
    for name in sorted(n for n, v in metadata.items() if v["label"] == "FAKE"):
        pred = predictor.predict_video(test_videos / name)
        crops += [c for c, s in zip(pred.face_crops, pred.mean_face_scores) if s > 0.5]
    assert len(crops) >= 2
    return crops


def test_the_map_follows_the_face_region(fake_crops, generator_detector):
    model = load_model(generator_detector)
    crop = fake_crops[0]
    heat = explain_faces([model], [crop])[0]
    assert heat.shape == crop.shape[:2] and heat.max() == pytest.approx(1.0, abs=0.01) and heat.min() >= 0
    # paint over the face (the middle of the crop: the crop is the box plus a third of it on each side) with the
    # crop's mean colour: every map moves (the 96 px model has a 3 x 3 last stage, so the maps are coarse)
    changes = []
    for c in fake_crops:
        h, w = c.shape[:2]
        painted = c.copy()
        painted[h // 4:3 * h // 4, w // 4:3 * w // 4] = c.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        before, after = explain_faces([model], [c, painted])
        changes.append(float(np.abs(before - after).mean()))
    assert min(changes) > 0.01 and np.mean(changes) > 0.03, np.round(changes, 3)
    # the same input gives the same map (nothing random in it)
    assert np.array_equal(heat, explain_faces([model], [crop])[0])


def test_the_map_comes_from_the_model_and_ignores_the_zero_padding(fake_crops, generator_detector):
    model = load_model(generator_detector)
    crop = fake_crops[1]
    narrow = np.ascontiguousarray(crop[:, : crop.shape[1] * 3 // 5])  # a tall crop: the model input gets side padding
    size = model.input_size
    top, left, height, width = content_box(narrow.shape, size)
    assert left > 0 and width < size and height == size
    model_input = face_to_model_input(narrow, size)
    assert not model_input[:, :left].any() and not model_input[:, left + width:].any()  # the zero padding
    tensor = normalize_batch(torch.from_numpy(model_input[None]).permute(0, 3, 1, 2), model.input_spec)
    full = grad_cam(model.model, tensor)[0].numpy()
    heat = explain_faces([model], [narrow])[0]
    # the heatmap is the face part of the model input's map, brought to the crop's size; the padding is cut off
    expected = cv2.resize(full[top:top + height, left:left + width], (narrow.shape[1], narrow.shape[0]),
                          interpolation=cv2.INTER_LINEAR)
    assert heat.shape == narrow.shape[:2] and np.allclose(heat, expected, atol=1e-6)
    # the map is the model's: the same crop under the negated head (its REAL evidence) gives another map
    flipped = load_model(generator_detector)
    with torch.no_grad():
        flipped.model.fc.weight.neg_()
        flipped.model.fc.bias.neg_()
    assert np.abs(explain_faces([flipped], [narrow])[0] - heat).mean() > 0.05


def test_explain_in_the_report_and_without_it(test_videos, generator_detector, tmp_path):
    folder = test_videos
    output = tmp_path / "out.csv"
    report = tmp_path / "report"
    assert cli.main(["--test-dir", str(folder), "--models", str(generator_detector), "--output",
                                str(output), "--frames-per-video", "4", "--report", str(report), "--explain", "2",
                                "--no-progress"]) == 0
    persons = json.loads(outputs.persons_path_for(output).read_text())
    for name, video in persons.items():
        page = (report / "videos" / f"{name[:-4]}.html").read_text()
        heatmaps = re.findall(r'src="([^"]+_face\d+\.png)"', page)
        n_expected = sum(min(2, len(p["frames"])) for p in video["persons"])
        assert len(heatmaps) == n_expected, name
        for target in heatmaps:
            image = cv2.imread(str(report / "videos" / target))
            assert image is not None and image.shape[0] > 20
    # without --report: the same heatmaps next to the output
    output2 = tmp_path / "plain.csv"
    assert cli.main(["--test-dir", str(folder), "--models", str(generator_detector), "--output",
                                str(output2), "--frames-per-video", "4", "--explain", "1", "--no-progress"]) == 0
    written = sorted(outputs.explain_path_for(output2).rglob("*.png"))
    assert len(written) == sum(len(v["persons"]) for v in persons.values())
