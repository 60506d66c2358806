"""2D and 3D checkpoints in one prediction: the clip models score chunks of each person's face-track clip (the
clips stage's geometry), the families are pooled per person by their weights (real MTCNN, a real Lite0
classifier and a real I3D network inflated from the offline Lite0 weights, real MP4s)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from core.calibration import apply_temperature
from core.geometry import centre_crop_clip
from core.input_spec import place_clip, to_model_batch
from faces.track_clips import ClipOptions, cut_clip_frame, plan_track_clips
from models.checkpoints import load_model
from prediction import cli, outputs
from prediction.clip_scoring import (
    ClipGeometry,
    clip_crop_share,
    clip_geometry,
    plan_person_chunks,
    score_clips,
)
from prediction.options import resolve_options
from prediction.persons import read_persons, write_persons
from prediction.predictor import VideoPredictor
from tests.conftest import REAL_SMALL, save_inflated_clip_checkpoint
from training.transforms.clip_augmentations import create_clip_val_transforms, transform_clip

CLIP_FRAMES = 4  # a short chunk keeps the CPU cost small
CLIP_SIDE_PX = 72  # the side "its training clips" had: the region goes to 72 px, then to the 64 px input
FRAMES_PER_VIDEO = 8
CLIP_CHUNKS = 2
REAL_VIDEO = REAL_SMALL / "dfdc_train_part_0" / "634.mp4"  # FF++ original, 1280x720, 338 frames, one person


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    """An I3D network inflated from the offline Lite0 ImageNet weights, saved by the project's writer."""
    config = {"family": "inflated3d", "encoder": "tf_efficientnet_lite0", "size": 64, "clip_frames": CLIP_FRAMES,
              "clip_size": CLIP_SIDE_PX, "pretrained": "lite0-package"}
    return save_inflated_clip_checkpoint(tmp_path_factory.mktemp("clip_checkpoint") / "I3D_tf_efficientnet_lite0_0_best",
                                         config)


def _predictor(models, **options) -> VideoPredictor:
    return VideoPredictor(models=models, options=resolve_options(
        frames_per_video=FRAMES_PER_VIDEO, clip_chunks=CLIP_CHUNKS, **options))


@pytest.fixture(scope="module")
def real_mixed(project_checkpoint, clip_checkpoint):
    """One real video detected once and classified by the 2D + 3D ensemble and by each family alone."""
    if not REAL_VIDEO.is_file():
        pytest.skip(f"real clip not present at {REAL_VIDEO}")
    image, clip = load_model(project_checkpoint), load_model(clip_checkpoint)
    mixed = _predictor([image, clip])
    detected = mixed.detect_decoded(mixed.decode(REAL_VIDEO))
    assert detected.fallback is None
    return {"mixed": mixed.classify_detected(detected),
            "image_only_weight": _predictor([image, clip], family_weights="2d=1,3d=0").classify_detected(detected),
            "image_alone": _predictor([image]).classify_detected(detected),
            "clip_alone": _predictor([clip]).classify_detected(detected),
            "detected": detected, "clip_model": clip, "predictor": mixed}


def test_a_2d_and_a_3d_checkpoint_give_each_person_both_family_scores(real_mixed):
    pred = real_mixed["mixed"]
    assert pred.model_kinds == ["2d", "3d"] and pred.n_persons >= 1
    for person in range(pred.n_persons):
        image, clip = pred.family_person_scores["2d"][person], pred.family_person_scores["3d"][person]
        assert image is not None and clip is not None
        assert abs(image - clip) > 1e-3  # two different numbers, so the weights below can be told apart
        assert pred.person_scores[person] == pytest.approx(0.5 * image + 0.5 * clip, abs=1e-12)  # 50:50 default
        chunks = [c for c in pred.chunks if c.person == person]
        assert len(chunks) == CLIP_CHUNKS and all(c.model == 1 for c in chunks)
        assert all(c.frames[1] - c.frames[0] == CLIP_FRAMES - 1 for c in chunks)  # consecutive video frames
        # the person's 3D score is the strategy over its chunks (two chunks: their mean)
        assert clip == pytest.approx(np.mean([c.score for c in chunks]), abs=1e-12)
    assert pred.probability == pytest.approx(max(pred.person_scores), abs=1e-12)  # per-person rule


def test_family_weights_act(real_mixed):
    mixed, image_alone, clip_alone = real_mixed["mixed"], real_mixed["image_alone"], real_mixed["clip_alone"]
    # 1:0 gives the 2D score: the 2D model's alone, though the 3D model ran (its scores are kept)
    weighted = real_mixed["image_only_weight"]
    assert weighted.person_scores == pytest.approx(mixed.family_person_scores["2d"], abs=1e-12)
    assert weighted.probability == pytest.approx(image_alone.probability, abs=1e-12)
    assert weighted.probability != pytest.approx(mixed.probability, abs=1e-4)
    assert weighted.family_person_scores == mixed.family_person_scores
    # each family alone gives what the mixed run says of that family
    assert image_alone.person_scores == pytest.approx(mixed.family_person_scores["2d"], abs=1e-12)
    assert clip_alone.person_scores == pytest.approx(mixed.family_person_scores["3d"], abs=1e-12)


def _with_temperature(source, target, temperature: float):
    """``source`` with a ``calibration`` entry as training writes it."""
    data = torch.load(source, map_location="cpu", weights_only=False)
    data["calibration"] = {"method": "temperature", "temperature": temperature, "fitted_on": "validation fold",
                           "log_loss_before": float("nan"), "log_loss_after": float("nan")}
    torch.save(data, target)
    return target


def test_each_models_temperature_scales_its_person_scores_before_the_kinds_are_pooled(
        real_mixed, project_checkpoint, clip_checkpoint, tmp_path):
    temperatures = [3.0, 0.5]  # the 2D scores pulled towards 0.5, the 3D scores pushed away from it
    calibrated = [load_model(_with_temperature(path, tmp_path / path.name, t))
                  for path, t in zip([project_checkpoint, clip_checkpoint], temperatures)]
    raw, detected = real_mixed["mixed"], real_mixed["detected"]  # the same models without temperatures
    on = _predictor(calibrated).classify_detected(detected)
    off = _predictor(calibrated, calibration="off").classify_detected(detected)
    for person in range(raw.n_persons):
        expected = {kind: float(apply_temperature([raw.model_person_scores[row][person]], t)[0])
                    for row, (kind, t) in enumerate(zip(["2d", "3d"], temperatures))}
        assert {k: v[person] for k, v in on.family_person_scores.items()} == pytest.approx(expected, abs=1e-9)
        assert on.person_scores[person] == pytest.approx(0.5 * expected["2d"] + 0.5 * expected["3d"], abs=1e-9)
        assert on.person_scores[person] != pytest.approx(raw.person_scores[person], abs=1e-4)
    assert on.raw_probability == pytest.approx(raw.probability, abs=1e-9)
    # --calibration off: the raw scores at every level, and no raw score apart
    for kind in ("2d", "3d"):
        assert off.family_person_scores[kind] == pytest.approx(raw.family_person_scores[kind], abs=1e-9)
    assert off.person_scores == pytest.approx(raw.person_scores, abs=1e-9)
    assert off.probability == pytest.approx(raw.probability, abs=1e-9) and off.raw_probability is None


def test_a_3d_only_prediction_scores_chunks_cut_as_the_clips_stage_cuts(real_mixed, tmp_path):
    pred, detected, clip = real_mixed["clip_alone"], real_mixed["detected"], real_mixed["clip_model"]
    faces = detected.faces
    assert pred.model_kinds == ["3d"] and pred.face_scores.shape == (0, faces.face_frame_indices.size)
    assert pred.probability == pytest.approx(max(pred.family_person_scores["3d"]), abs=1e-12)
    geometry = clip_geometry(clip.input_spec, clip.config)
    assert geometry == ClipGeometry(CLIP_FRAMES, 1, CLIP_SIDE_PX)
    person = 0
    mine = np.flatnonzero(pred.face_persons == person)
    track = [(int(faces.face_frame_indices[i]), faces.boxes[i]) for i in mine]
    chunks = plan_person_chunks(person, track, faces.frame_shape, geometry, 100, CLIP_CHUNKS)
    # the clips stage, planning from the same boxes, gives the same region for the clip holding each chunk
    boxes_by_frame = {int(f): [] for f in detected.frame_indices}
    for i in np.flatnonzero(pred.face_persons >= 0):
        boxes_by_frame[int(faces.face_frame_indices[i])].append(faces.boxes[i].tolist())
    stage_clips, _ = plan_track_clips(boxes_by_frame, faces.frame_shape, ClipOptions(CLIP_FRAMES, 100, 1))
    for chunk in chunks:
        holding = [c for c in stage_clips if c.person == person and chunk.frames[0] in c.frames]
        assert len(holding) == 1 and holding[0].region == chunk.region
    # every frame decoded by a plain sequential read, cut with the chunk's region: the predictor's score
    capture, frames, index = cv2.VideoCapture(str(REAL_VIDEO)), {}, 0
    wanted = {f for chunk in chunks for f in chunk.frames}
    while index <= max(wanted):
        ok, frame = capture.read()
        assert ok
        if index in wanted:
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()
    scored = {c.frames: c.score for c in pred.chunks if c.person == person}
    assert sorted(scored) == sorted((c.frames[0], c.frames[-1]) for c in chunks)
    for chunk in chunks:
        cut = [cut_clip_frame(frames[f], chunk.region, CLIP_SIDE_PX) for f in chunk.frames]
        assert cut[0].shape == (CLIP_SIDE_PX, CLIP_SIDE_PX, 3)
        with torch.no_grad():
            logit = clip.model(to_model_batch([place_clip(cut, clip.input_spec)], clip.input_spec))
        assert scored[(chunk.frames[0], chunk.frames[-1])] == pytest.approx(torch.sigmoid(logit).item(), abs=1e-5)
    # the persons file carries the 3D scores and chunks
    write_persons(tmp_path / "persons.json", [pred])
    person_record = read_persons(tmp_path / "persons.json")[pred.name].persons[person]
    assert person_record.family_scores == {"3d": pytest.approx(pred.family_person_scores["3d"][person])}
    assert len(person_record.chunks) == CLIP_CHUNKS and person_record.face_scores == []


def test_tracks_shorter_than_a_chunk_fall_back_with_the_reason(real_mixed):
    clip = real_mixed["clip_model"]
    too_long = dataclasses.replace(clip, input_spec=clip.input_spec.replace(frames_per_clip=400))  # > 338 frames
    pred = _predictor([too_long]).classify_detected(real_mixed["detected"])
    assert pred.fallback_kind == "no_clip" and pred.probability == 0.5
    assert "no chunk for the clip models" in pred.fallback_reason and "400 frames" in pred.fallback_reason
    # beside an image model the persons keep their 2D score
    mixed = _predictor([real_mixed["predictor"].models[0], too_long]).classify_detected(real_mixed["detected"])
    assert mixed.fallback_kind is None and mixed.family_person_scores["3d"] == [None] * mixed.n_persons
    assert mixed.person_scores == pytest.approx(mixed.family_person_scores["2d"], abs=1e-12)


def test_weights_that_leave_the_models_no_weight_are_refused(project_checkpoint, clip_checkpoint):
    with pytest.raises(ValueError, match="gives the loaded models' kinds no weight"):
        VideoPredictor([project_checkpoint], resolve_options(family_weights="2d=0,3d=1"))
    for bad, message in (("2d=x", "expected KIND=WEIGHT"), ("4d=1", "unknown kind"), ("2d=-1", ">= 0"),
                         ("2d=1,2d=1", "twice")):
        with pytest.raises(ValueError, match=message):
            resolve_options(family_weights=bad)


def test_folder_prediction_writes_both_families_per_person(test_videos, project_checkpoint, clip_checkpoint,
                                                           tmp_path):
    """The command line on a generated video: persons file, metrics and report name both families."""
    folder = tmp_path / "videos"
    folder.mkdir()
    video = sorted(test_videos.glob("*.mp4"))[0]
    shutil.copy(video, folder / video.name)
    output, report = tmp_path / "out.csv", tmp_path / "report"
    assert cli.main(["--test-dir", str(folder), "--models", str(project_checkpoint), str(clip_checkpoint),
                     "--output", str(output), "--frames-per-video", str(FRAMES_PER_VIDEO), "--clip-chunks", "2",
                     "--family-weights", "2d=0.25,3d=0.75", "--family-pool", "geometric", "--no-labels",
                     "--report", str(report), "--no-progress"]) == 0
    entry = read_persons(outputs.persons_path_for(output))[video.name]
    assert entry.model_kinds == ["2d", "3d"] and set(entry.family_probabilities) == {"2d", "3d"}
    for person in entry.persons:
        assert set(person.family_scores) == {"2d", "3d"} and None not in person.family_scores.values()
        kinds = np.array([person.family_scores["2d"], person.family_scores["3d"]])
        logit = 0.25 * np.log(kinds[0] / (1 - kinds[0])) + 0.75 * np.log(kinds[1] / (1 - kinds[1]))
        assert person.score == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-9)  # the weighted log-odds
        assert person.score != pytest.approx(0.25 * kinds[0] + 0.75 * kinds[1], abs=1e-6)
        assert person.model_scores == [person.family_scores["2d"], person.family_scores["3d"]]
        assert person.chunks and all(c["model"] == 1 for c in person.chunks)
    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert metrics["families"]["families"] == ["classifier2d", "inflated3d"]
    assert metrics["families"]["weights"] == {"2d": 0.25, "3d": 0.75} and metrics["families"]["pool"] == "geometric"
    assert metrics["settings"]["family_weights"] == "2d=0.25,3d=0.75"
    page = next((report / "videos").glob("*.html")).read_text()
    first = entry.persons[0]
    assert f"(2d {first.family_scores['2d']:.4f}, 3d {first.family_scores['3d']:.4f})" in page
    assert "inflated3d (3d)" in (report / "index.html").read_text()


def test_a_clip_model_is_fed_the_centred_crop_validation_takes(clip_checkpoint, test_videos):
    """A checkpoint trained with ``clip_crop`` (every trained one: the config default is 0.875) sees at
    prediction the crop its validation saw: the clip resized to size / clip_crop, its centred square."""
    loaded = load_model(clip_checkpoint)  # a copy of its own: the head is undone so the scores do not saturate
    with torch.no_grad():
        loaded.model.fc.weight.div_(20.0)
    spec, crop_share = loaded.input_spec, 0.875
    capture = cv2.VideoCapture(str(sorted(test_videos.glob("*.mp4"))[0]))
    frames = []
    while len(frames) < CLIP_FRAMES:
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    clip = np.stack([cut_clip_frame(frame, (40, 20, 200, 180), CLIP_SIDE_PX) for frame in frames])
    validation = transform_clip(create_clip_val_transforms(spec, crop_share), clip)
    cropped = centre_crop_clip(clip, spec.size_px, crop_share)
    assert cropped.shape == validation.shape == (CLIP_FRAMES, spec.size_px, spec.size_px, 3)
    assert np.abs(cropped.astype(int) - validation.astype(int)).max() <= 1
    score = score_clips(loaded.model, [clip], spec, "cpu", torch.float32, 1, crop_share=crop_share)[0]
    with torch.no_grad():
        expected = torch.sigmoid(loaded.model(to_model_batch([place_clip(list(validation), spec)], spec))).item()
    assert score == pytest.approx(expected, abs=1e-5)
    whole = score_clips(loaded.model, [clip], spec, "cpu", torch.float32, 1)[0]
    assert abs(whole - score) > 1e-4  # the crop acts
    # where the chunks are cut: the recorded clip side, else the side the crop is taken from
    assert clip_crop_share({}) == 1.0 and clip_crop_share({"clip_crop": crop_share}) == crop_share
    assert clip_geometry(spec, {"clip_crop": crop_share}).clip_side_px == round(spec.size_px / crop_share)
    assert clip_geometry(spec, {"clip_crop": crop_share, "clip_size": 128}).clip_side_px == 128
