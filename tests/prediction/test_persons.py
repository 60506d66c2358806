"""Face tracks and per-person verdicts on real generated videos (real MTCNN, real Lite0 classifiers)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from prediction import cli, outputs
from prediction.options import resolve_options
from prediction.persons import read_persons, video_persons
from prediction.predictor import VideoPredictor, list_videos, predict_on_video_set
from tests.prediction.conftest import write_video

FRAMES = 8  # per video: 8 faces per person, fewer than the 12 the winner's rule needs to trust fakes


def _sides(metadata: dict, name: str) -> dict[str, str]:
    return {p["side"]: p["label"] for p in metadata[name]["persons"]}


def test_two_person_videos_are_deterministic_and_labelled(two_person_dir, tmp_path):
    from sample_data.make_sample_dataset import generate_two_person_videos

    metadata = json.loads((two_person_dir / "metadata.json").read_text())
    labels = sorted(tuple(sorted(_sides(metadata, n).items())) for n in metadata)
    assert labels == [(("left", "FAKE"), ("right", "REAL")), (("left", "REAL"), ("right", "FAKE")),
                      (("left", "REAL"), ("right", "REAL"))]
    again = generate_two_person_videos(tmp_path, 1, seconds=2.0, fps=10, size=(640, 360), seed=0, progress=False)
    for video in again:
        assert video.path.read_bytes() == (two_person_dir / video.path.name).read_bytes()
    # a swap changes only its own half of the frame
    from core.video import iter_frames

    real = next(n for n in metadata if metadata[n]["label"] == "REAL")
    left_fake = next(n for n in metadata if _sides(metadata, n)["left"] == "FAKE")
    a = dict(iter_frames(two_person_dir / real, [10]))[10].astype(int)
    b = dict(iter_frames(two_person_dir / left_fake, [10]))[10].astype(int)
    diff = np.abs(a - b).sum(axis=2)
    assert diff[:, :320].sum() > 10 * diff[:, 320:].sum()  # (the encoder spreads a little over the seam)


def test_tracks_match_the_people_and_persons_json_round_trips(two_person_dir, project_checkpoint, tmp_path):
    output = tmp_path / "out.csv"
    assert cli.main(["--test-dir", str(two_person_dir), "--models", str(project_checkpoint), "--output",
                                str(output), "--frames-per-video", str(FRAMES), "--no-progress"]) == 0
    persons = read_persons(outputs.persons_path_for(output))
    assert sorted(persons) == sorted(p.name for p in two_person_dir.glob("*.mp4"))
    for name, video in persons.items():
        assert len(video.persons) == 2 and video.dropped_tracks is None, name
        sides = set()
        for person in video.persons:
            assert person.n_faces == FRAMES and sorted(person.frames) == sorted(set(person.frames))  # one face a frame
            centres = [(b[0] + b[2]) / 2 for b in person.boxes]
            side = "left" if max(centres) < 320 else "right" if min(centres) >= 320 else "both"
            sides.add(side)
            assert len(person.face_scores) == FRAMES and len(person.model_face_scores) == 1
            assert all(0.9 < d <= 1 for d in person.detector_probabilities)
        assert sides == {"left", "right"}, name  # each track is one person, on its own side
        assert video.probability == max(p.score for p in video.persons)  # the default rule: per person

    # round trip: the file holds exactly what the predictor produced over the same folder (the same torch threads
    # per operation: a folder run divides them among the videos in flight)
    predictor = VideoPredictor([project_checkpoint], resolve_options(frames_per_video=FRAMES, device="cpu"))
    name = sorted(persons)[0]
    fresh = {p.name: p for p in predict_on_video_set(predictor, list_videos(two_person_dir))}
    assert video_persons(fresh[name]) == persons[name]


def _paste_spurious_face(source: Path, target: Path, frame_index: int) -> Path:
    """The video with a second, smaller copy of its face in the top-left corner of 3 frames around
    ``frame_index`` (a poster glimpsed for a moment)."""
    from core.video import iter_frames
    from faces.mtcnn import FaceDetector

    frames = [frame for _, frame in iter_frames(source)]
    box = FaceDetector(device="cpu").detect([frames[frame_index]])[0][0]
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    pad = (x2 - x1) // 3
    face = frames[frame_index][max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
    small = cv2.resize(face, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    for i in range(max(0, frame_index - 1), min(len(frames), frame_index + 2)):
        frames[i] = frames[i].copy()
        frames[i][4:4 + small.shape[0], 4:4 + small.shape[1]] = small
    return write_video(target, frames)


def test_a_short_spurious_detection_is_dropped(test_videos, project_checkpoint, tmp_path):
    source = sorted(test_videos.glob("*.mp4"))[0]
    options = resolve_options(frames_per_video=FRAMES, device="cpu")
    predictor = VideoPredictor([project_checkpoint], options)
    clean = predictor.predict_video(source)
    assert clean.n_persons == 1 and not np.any(clean.face_persons == -1)
    sampled = clean.frame_indices
    video = _paste_spurious_face(source, tmp_path / "poster.mp4", sampled[3])  # seen in one sampled frame

    pred = predictor.predict_video(video)
    assert pred.frame_indices == sampled
    faces_per_frame = np.bincount(pred.face_frame_indices, minlength=max(sampled) + 1)
    assert faces_per_frame[sampled[3]] == 2  # MTCNN found the copy
    assert pred.n_persons == 1 and np.count_nonzero(pred.face_persons == -1) == 1
    dropped = int(np.flatnonzero(pred.face_persons == -1)[0])
    assert pred.face_boxes[dropped, 0] < 60 and pred.face_frame_indices[dropped] == sampled[3]
    kept = pred.face_persons == 0
    assert pred.per_person_probability == pytest.approx(predictor.aggregate(pred.face_scores[:, kept])[0])
    # the pooled rule keeps it; a minimum of 1 face keeps it as a second person
    assert pred.pooled_probability == pytest.approx(predictor.aggregate(pred.face_scores)[0])
    keep_all = VideoPredictor([project_checkpoint], resolve_options(frames_per_video=FRAMES, device="cpu",
                                                                    track_min_faces=1))
    assert keep_all.predict_video(video).n_persons == 2


def test_per_person_aggregation_flags_the_swapped_person(two_person_dir, generator_detector, tmp_path):
    metadata = json.loads((two_person_dir / "metadata.json").read_text())
    results = {}
    for aggregate in ("per-person", "winner"):
        output = tmp_path / f"{aggregate}.csv"
        assert cli.main(["--test-dir", str(two_person_dir), "--models", str(generator_detector),
                                    "--output", str(output), "--frames-per-video", str(FRAMES),
                                    "--aggregate", aggregate, "--no-progress",
                                    # the model's own separation; its temperature (fitted on the few validation
                                    # videos of generated clips) only flattens it towards 0.5
                                    "--calibration", "off"]) == 0
        results[aggregate] = read_persons(outputs.persons_path_for(output))
    for name, video in results["per-person"].items():
        sides = _sides(metadata, name)
        by_side = {("left" if np.mean([(b[0] + b[2]) / 2 for b in p.boxes]) < 320 else "right"): p.score
                   for p in video.persons}
        assert video.aggregate == "per-person" and results["winner"][name].aggregate == "winner"
        assert results["winner"][name].probability == video.pooled_probability
        if metadata[name]["label"] == "REAL":
            assert video.probability < 0.5, (name, by_side)
            continue
        fake_side = next(s for s, label in sides.items() if label == "FAKE")
        real_side = next(s for s, label in sides.items() if label == "REAL")
        assert by_side[fake_side] > 0.9 and by_side[real_side] < 0.5, (name, by_side)  # the swapped person
        assert video.probability == by_side[fake_side] > 0.9
        # pooling averages the swap with the real face: 8 confident faces are too few for the winner's rule
        assert video.pooled_probability < 0.75 < video.probability, name


