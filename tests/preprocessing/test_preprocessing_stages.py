"""What the five preprocessing stages write, checked on the generated sample set and the real clips."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from core.video import iter_frames, probe_video
from datasets.layout import DataLayout
from faces.mtcnn import THRESHOLDS_PREPROCESS
from preprocessing.detect_original_faces import _detector, _WorkerState, detect_video_boxes, load_boxes
from preprocessing.extract_crops import extract_crops
from preprocessing.generate_diffs import generate_diffs
from preprocessing.generate_folds import generate_folds
from preprocessing.generate_landmarks import box_in_crop


def _entries(root):
    entries, problems = DataLayout(root).scan()
    assert entries and not problems
    return entries


def _face_energy_ratio(diff: np.ndarray, box_px) -> float:
    """Mean diff inside the face box over the mean outside it."""
    x1, y1, x2, y2 = (int(round(v)) for v in box_px)
    inside = np.zeros(diff.shape, bool)
    inside[max(y1, 0):y2, max(x1, 0):x2] = True
    return float(diff[inside].mean()) / max(float(diff[~inside].mean()), 1e-3)


def test_every_real_has_boxes_on_at_least_95_percent_of_its_cropped_frames(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    reals = [e for e in _entries(preprocessed_root) if not e.is_fake]
    assert len(reals) == 4
    for entry in reals:
        boxes = json.loads(layout.boxes_path(entry.video_id).read_text())
        n_frames = probe_video(entry.path).frame_count
        assert sorted(int(k) for k in boxes) == list(range(0, n_frames, 10))  # exactly the frames cropped
        found = [v for v in boxes.values() if v]
        assert len(found) >= 0.95 * len(boxes)
        info = probe_video(entry.path)
        for faces in found:
            for x1, y1, x2, y2, score in faces:  # full-resolution pixels, a plausible face size
                assert 0 <= x1 < x2 <= info.width and 0 <= y1 < y2 <= info.height
                assert 20 <= x2 - x1 <= info.width / 2 and score >= THRESHOLDS_PREPROCESS[2]
    # fakes reuse their original's boxes: none of their own
    assert sorted(p.stem for p in layout.boxes_dir.iterdir()) == sorted(e.video_id for e in reals)


def test_stage1_decodes_the_next_video_ahead_and_uses_those_frames(sample_root):
    reals = [e.path for e in _entries(sample_root) if not e.is_fake]
    state = _WorkerState(_detector("cpu"))
    # the runner announces video 1 before it hands over video 0
    state.prefetch(reals[1], 10)
    current = state.reader_for(reals[0], 10)
    ahead = state.ahead[(reals[1], 10)]  # still waiting for its turn, not dropped
    assert state.reader_for(reals[1], 10) is ahead and not state.ahead
    for reader, path in ((current, reals[0]), (ahead, reals[1])):
        got = list(reader)
        expected = list(iter_frames(path, every=10))
        assert [i for i, _ in got] == [i for i, _ in expected] == list(range(0, 20, 10))
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expected))
    # announced videos that never come are dropped, so the frames held stay bounded
    for path in reals:
        state.prefetch(path, 10)
    assert len(state.ahead) == _WorkerState.MAX_AHEAD
    for reader in state.ahead.values():
        reader.close()


def test_all_frames_mode_detects_every_frame_with_the_same_boxes(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    real = next(e for e in _entries(preprocessed_root) if not e.is_fake)
    detector = _detector("cpu")  # the stage's own
    every_frame = detect_video_boxes(real.path, detector, every=None)
    assert sorted(every_frame) == list(range(probe_video(real.path).frame_count))
    assert sum(b is not None for b in every_frame.values()) >= 0.95 * len(every_frame)
    # the default run saw frames 0 and 10 in a batch of two; here they sit in batches of 8 frames
    for frame, faces in load_boxes(layout, real.video_id).items():
        assert np.allclose(np.array(faces)[:, :4], every_frame[frame][:, :4], atol=0.5)


def test_originals_and_fakes_have_crops_with_the_same_names_and_sizes(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    entries = _entries(preprocessed_root)
    for fake in (e for e in entries if e.is_fake):
        names = layout.crop_files(fake.video_id)
        assert names and names == layout.crop_files(fake.original_id)
        boxes = load_boxes(layout, fake.original_id)
        for frame, face in names:
            fake_crop = cv2.imread(str(layout.crop_path(fake.video_id, frame, face)))
            original_crop = cv2.imread(str(layout.crop_path(fake.original_id, frame, face)))
            assert fake_crop.shape == original_crop.shape
            x1, y1, x2, y2 = boxes[frame][face][:4]
            # the box plus 1/3 of its size on each side (the sample faces sit inside the frame)
            assert abs(fake_crop.shape[1] - (x2 - x1) * 5 / 3) <= 3
            assert abs(fake_crop.shape[0] - (y2 - y1) * 5 / 3) <= 3
            assert not np.array_equal(fake_crop, original_crop)  # a fake differs from its original


def test_landmarks_lie_inside_their_crops_in_face_order(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    n_five = n_crops = 0
    for original in (e for e in _entries(preprocessed_root) if not e.is_fake):
        for frame, face in layout.crop_files(original.video_id):
            n_crops += 1
            height, width = cv2.imread(str(layout.crop_path(original.video_id, frame, face))).shape[:2]
            points68 = np.load(layout.landmarks68_path(original.video_id, frame, face))
            assert points68.shape == (68, 2) and points68.dtype == np.float32
            assert (points68 >= 0).all() and (points68[:, 0] < width).all() and (points68[:, 1] < height).all()
            # dlib's order: eyes (36-47) above the mouth (48-67), jaw (0-16) spans the face width
            assert points68[36:48, 1].mean() < points68[48:68, 1].mean()
            assert np.ptp(points68[0:17, 0]) > 0.3 * width
            five_path = layout.landmarks_path(original.video_id, frame, face)
            if five_path.exists():
                n_five += 1
                points5 = np.load(five_path)
                assert points5.shape == (5, 2) and points5.dtype == np.float32
                assert (points5 >= 0).all() and (points5[:, 0] < width).all() and (points5[:, 1] < height).all()
                # MTCNN's order: left eye, right eye, nose, mouth left, mouth right
                assert points5[0, 0] < points5[1, 0] and points5[3, 0] < points5[4, 0]
                assert max(points5[0, 1], points5[1, 1]) < points5[2, 1] < min(points5[3, 1], points5[4, 1])
                # both detectors agree on where the eyes are (within a tenth of the crop)
                left_eye68 = points68[36:42].mean(axis=0)
                assert np.linalg.norm(points5[0] - left_eye68) < 0.1 * width
    assert n_crops == 8 and n_five >= 0.9 * n_crops


def test_ssim_diff_energy_sits_on_the_face(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    n_diffs = 0
    for fake in (e for e in _entries(preprocessed_root) if e.is_fake):
        boxes = load_boxes(layout, fake.original_id)
        for frame, face in layout.crop_files(fake.video_id):
            diff = cv2.imread(str(layout.diff_path(fake.video_id, frame, face)), cv2.IMREAD_UNCHANGED)
            assert diff.ndim == 2 and diff.dtype == np.uint8
            assert diff.shape == cv2.imread(str(layout.crop_path(fake.video_id, frame, face))).shape[:2]
            assert _face_energy_ratio(diff, box_in_crop(boxes[frame][face])) >= 4
            n_diffs += 1
    assert n_diffs == 16
    assert not any(layout.diffs_dir(e.video_id).exists() for e in _entries(preprocessed_root) if not e.is_fake)


def test_folds_csv_matches_the_crops_and_never_splits_a_pair(preprocessed_root):
    layout = DataLayout(preprocessed_root)
    entries = {e.video_id: e for e in _entries(preprocessed_root)}
    with open(layout.folds_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["video", "file", "label", "original", "frame", "fold"]
    on_disk = {(video, f"{frame}_{face}.png") for video in entries for frame, face in layout.crop_files(video)}
    assert {(r["video"], r["file"]) for r in rows} == on_disk and len(rows) == len(on_disk)
    folds_of_original: dict[str, set[str]] = {}
    for row in rows:
        entry = entries[row["video"]]
        assert row["label"] == ("1" if entry.is_fake else "0")
        assert row["original"] == entry.source_id
        assert row["file"].startswith(f"{row['frame']}_")
        folds_of_original.setdefault(row["original"], set()).add(row["fold"])
        # two parts: the fold is the original's part number (mod 16)
        assert row["fold"] == entries[row["original"]].part.rsplit("_", 1)[1]
    assert all(len(folds) == 1 for folds in folds_of_original.values())
    assert {f for folds in folds_of_original.values() for f in folds} == {"0", "1"}


def test_single_part_folds_split_by_original(preprocessed_root, tmp_path):
    # one part: folds come from the original ids (fakes follow their original), deterministically
    root = tmp_path / "data"
    source = preprocessed_root / "dfdc_train_part_0"
    shutil.copytree(source, root / source.name)
    shutil.copytree(preprocessed_root / "crops", root / "crops")
    summary = generate_folds(root, progress=False, n_splits=3)
    assert summary.failed == 0
    first = (root / "folds.csv").read_bytes()
    generate_folds(root, progress=False, n_splits=3)
    assert (root / "folds.csv").read_bytes() == first
    rows = list(csv.DictReader(first.decode().splitlines()))
    videos = {e.video_id for e in DataLayout(root).scan()[0]}
    assert {r["video"] for r in rows} == videos  # crops of the other part are not listed
    by_original: dict[str, set[str]] = {}
    for row in rows:
        by_original.setdefault(row["original"], set()).add(row["fold"])
    assert all(len(f) == 1 for f in by_original.values()) and len(by_original) == 2


# ---- the real clips (skipped when ../shared/data/real_small is absent) ---------------------------
@pytest.mark.real_data
def test_portrait_dfdc_clip_gets_boxes_on_90_percent_of_frames(real_small):
    clip = real_small / "dfdc_train_part_0" / "brtujopkby.mp4"
    detector = _detector("cpu")  # the stage's own
    boxes = detect_video_boxes(clip, detector, every=30)  # 10 of its 300 frames keep the test short
    assert sorted(boxes) == list(range(0, 300, 30))
    assert sum(b is not None for b in boxes.values()) >= 0.9 * len(boxes)
    for frame_boxes in boxes.values():
        if frame_boxes is not None:  # full-resolution pixels of the 1080x1920 portrait frame
            assert (frame_boxes[:, [0, 2]] <= 1080).all() and (frame_boxes[:, [1, 3]] <= 1920).all()
            assert (frame_boxes[:, 2] - frame_boxes[:, 0]).max() > 60  # the face is ~100 px wide


@pytest.mark.real_data
@pytest.mark.slow
def test_real_pairs_give_face_diffs_and_the_orphan_fake_is_logged(real_small, tmp_path):
    from preprocessing.detect_original_faces import detect_original_faces

    root = tmp_path / "data"
    shutil.copytree(real_small, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    every = 75  # a few frames per clip keep this test short; the FF++ clips are 338 and 751 frames
    stage1 = detect_original_faces(root, workers=1, progress=False, every=every)
    stage2 = extract_crops(root, workers=1, progress=False, every=every)
    stage4 = generate_diffs(root, workers=1, progress=False)
    stage5 = generate_folds(root, progress=False)
    assert (stage1.done, stage1.failed) == (3, 0)  # the orphan fake is no business of stage 1
    for summary in (stage2, stage4, stage5):
        assert [item for item, _ in summary.failures] == ["brtujopkby"]
        assert "gnmmhlbzge" in summary.failures[0][1]
    layout = DataLayout(root)
    for stage in ("extract_crops", "generate_diffs", "generate_folds"):
        logged = [json.loads(line) for line in layout.log_path(stage).read_text().splitlines()]
        assert [line["item"] for line in logged] == ["brtujopkby"]
    assert not layout.crops_dir("brtujopkby").exists()
    assert "brtujopkby" not in layout.folds_csv.read_text()
    for fake, original in (("519_515", "519"), ("634_660", "634")):
        boxes = load_boxes(layout, original)
        names = layout.crop_files(fake)
        assert len(names) >= 4
        ratios = [_face_energy_ratio(cv2.imread(str(layout.diff_path(fake, frame, face)), cv2.IMREAD_UNCHANGED),
                                     box_in_crop(boxes[frame][face])) for frame, face in names]
        assert np.median(ratios) >= 3, (fake, ratios)


def _original_recipe_crops(video) -> dict[tuple[int, int], np.ndarray]:
    """The original recipe's stages 1 and 2, step by step: every frame halved with PIL, facenet-pytorch's
    MTCNN (0.85/0.95/0.95, its default largest-first order) in batches of 32, the half-resolution boxes
    through JSON, then every 10th frame cut with ``int(b * 2)`` and the ``// 3`` margins. BGR crops."""
    from facenet_pytorch import MTCNN
    from PIL import Image

    mtcnn = MTCNN(margin=0, thresholds=[0.85, 0.95, 0.95], device="cpu")
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    halves = []
    for frame in frames:
        image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        halves.append(image.resize(size=[s // 2 for s in image.size]))
    boxes = {}
    for start in range(0, len(halves), 32):
        found, *_ = mtcnn.detect(halves[start:start + 32], landmarks=False)
        boxes.update({start + i: (b.tolist() if b is not None else None) for i, b in enumerate(found)})
    boxes = json.loads(json.dumps({str(k): v for k, v in boxes.items()}))
    crops = {}
    for index in range(0, len(frames), 10):
        for face, bbox in enumerate(boxes[str(index)] or []):
            xmin, ymin, xmax, ymax = [int(b * 2) for b in bbox]
            p_h, p_w = (ymax - ymin) // 3, (xmax - xmin) // 3
            crops[index, face] = frames[index][max(ymin - p_h, 0):ymax + p_h, max(xmin - p_w, 0):xmax + p_w]
    return crops


@pytest.mark.real_data
def test_original_recipe_gives_the_original_crops(real_small, tmp_path):
    """Stage 1 + 2 with --recipe original (the default) cut the original recipe's crops, pixel for
    pixel, from a 41-frame real 1280x720 clip; --recipe fast cuts some differently."""
    import av

    from preprocessing.detect_original_faces import detect_original_faces

    source_part = tmp_path / "source" / "dfdc_train_part_0"
    source_part.mkdir(parents=True)
    clip = source_part / "real634.mp4"
    with av.open(str(real_small / "dfdc_train_part_0" / "634.mp4")) as source, av.open(str(clip), "w") as target:
        stream = target.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            if index == 41:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    (source_part / "metadata.json").write_text(json.dumps({clip.name: {"label": "REAL", "split": "train"}}))
    expected = _original_recipe_crops(clip)
    assert len(expected) >= 5

    crops = {}
    for recipe in ("original", "fast"):
        layout = DataLayout(shutil.copytree(tmp_path / "source", tmp_path / recipe))
        assert detect_original_faces(layout.root, workers=1, progress=False, recipe=recipe).done == 1
        extract_crops(layout.root, workers=1, progress=False)
        crops[recipe] = {key: cv2.imread(str(layout.crop_path("real634", *key))) for key in layout.crop_files("real634")}
    assert sorted(crops["original"]) == sorted(expected)
    for key, crop in expected.items():
        np.testing.assert_array_equal(crops["original"][key], crop, err_msg=str(key))
    assert any(key not in crops["fast"] or not np.array_equal(crops["fast"][key], crop)
               for key, crop in expected.items())
    # the recipe is part of stage 1's record: switching it redoes the stage
    assert detect_original_faces(layout.root, workers=1, progress=False, recipe="original").done == 1
    assert detect_original_faces(layout.root, workers=1, progress=False, recipe="original").skipped == 1
