"""The sample-dataset generator: DFDC layout, decodable H.264, one face per frame, fakes that differ
only on the face, determinism, and clear errors. Uses the session's generated ``sample_root``."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.video import count_frames, iter_frames, probe_video
from datasets.layout import DataLayout
from faces.mtcnn import THRESHOLDS_PREPROCESS, FaceDetector
from sample_data.make_sample_dataset import SampleDatasetError, generate_sample_dataset, main
from tests.conftest import REPO_ROOT, TINY_SET

FRAMES = round(TINY_SET["seconds"] * TINY_SET["fps"])
WIDTH, HEIGHT = TINY_SET["size"]
ID_PATTERN = re.compile(r"^[a-z]{10}\.mp4$")
# A very small set for the extra generations (determinism, preview): 1 real + 2 fakes + 1 test video.
MINI_SET = dict(parts=1, reals_per_part=1, seconds=0.4, fps=10, size=(192, 160), test_videos=1, progress=False)


SAMPLED = [0, FRAMES // 2, FRAMES - 1]


@pytest.fixture(scope="module")
def sampled_faces(sample_root) -> dict[Path, tuple[list[np.ndarray], list]]:
    """Per video: the SAMPLED frames and MTCNN's boxes on them (preprocessing thresholds)."""
    detector = FaceDetector(THRESHOLDS_PREPROCESS, device="cpu")
    paths = [path for path, _ in _all_videos(sample_root)]
    frames = {path: [f for _, f in iter_frames(path, SAMPLED)] for path in paths}
    boxes = iter(detector.detect([f for path in paths for f in frames[path]]))  # one batched pass
    found = {path: (frames[path], [next(boxes) for _ in frames[path]]) for path in paths}
    return found


def _metadata(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text())


def _all_videos(root: Path) -> list[tuple[Path, dict]]:
    return [(folder / name, info) for folder in sorted(root.iterdir()) if (folder / "metadata.json").is_file()
            for name, info in sorted(_metadata(folder).items())]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_metadata_are_dfdc(sample_root):
    parts = sorted(p.name for p in sample_root.glob("dfdc_train_part_*"))
    assert parts == [f"dfdc_train_part_{k}" for k in range(TINY_SET["parts"])]
    names = []
    for part in parts:
        metadata = _metadata(sample_root / part)
        reals = [n for n, i in metadata.items() if i["label"] == "REAL"]
        fakes = [n for n, i in metadata.items() if i["label"] == "FAKE"]
        assert len(reals) == TINY_SET["reals_per_part"] and len(fakes) == 2 * len(reals)
        for info in metadata.values():
            assert set(info) == {"label", "split", "original"} and info["split"] == "train"
            if info["label"] == "REAL":
                assert info["original"] is None
            else:  # every fake's original is a real video of the same part
                assert metadata[info["original"]]["label"] == "REAL"
        assert sorted(p.name for p in (sample_root / part).iterdir()) == sorted([*metadata, "metadata.json"])
        names += list(metadata)
    test_metadata = _metadata(sample_root / "test_videos")
    assert len(test_metadata) == TINY_SET["test_videos"]
    assert sorted(i["label"] for i in test_metadata.values()) == ["FAKE", "FAKE", "REAL", "REAL"]
    assert all(i == {"label": i["label"], "split": "test", "original": None} for i in test_metadata.values())
    names += list(test_metadata)
    assert all(ID_PATTERN.match(n) for n in names) and len(set(names)) == len(names)
    # the layout module reads it without complaint
    entries, problems = DataLayout(sample_root).scan()
    assert problems == [] and len(entries) == TINY_SET["parts"] * TINY_SET["reals_per_part"] * 3


def test_every_video_is_h264_with_the_stated_frames_and_size(sample_root):
    for path, _ in _all_videos(sample_root):
        info = probe_video(path)
        assert (info.width, info.height) == (WIDTH, HEIGHT), path
        assert info.frame_count == FRAMES and count_frames(path) == FRAMES, path
        assert info.fps == pytest.approx(TINY_SET["fps"])
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"


def test_mtcnn_finds_exactly_one_face_in_every_video(sample_root, sampled_faces):
    assert set(sampled_faces) == {path for path, _ in _all_videos(sample_root)}
    for path, (frames, boxes_per_frame) in sampled_faces.items():
        assert len(frames) == len(SAMPLED)
        for index, boxes in zip(SAMPLED, boxes_per_frame):
            assert boxes is not None and len(boxes) == 1, f"{path} frame {index}: {boxes}"
            assert boxes[0, 3] - boxes[0, 1] >= 60, f"{path} frame {index}: face only {boxes[0]}"


def test_fakes_differ_from_their_original_on_the_face_only(sample_root, sampled_faces):
    fakes = [(path, info) for path, info in _all_videos(sample_root) if info["label"] == "FAKE" and info["original"]]
    assert len(fakes) == 2 * TINY_SET["parts"] * TINY_SET["reals_per_part"]
    for path, info in fakes:
        originals, original_boxes = sampled_faces[path.parent / info["original"]]
        inside = total = face_area = 0.0
        for original, fake, boxes in zip(originals, sampled_faces[path][0], original_boxes):
            x1, y1, x2, y2 = np.round(boxes[0, :4]).astype(int).clip(0)
            energy = ((fake.astype(np.float32) - original.astype(np.float32)) ** 2).sum(axis=2)
            inside += energy[y1:y2, x1:x2].sum()
            total += energy.sum()
            face_area += (y2 - y1) * (x2 - x1)
        # H.264 re-encodes the whole frame, so a little difference leaks out; most must be on the face
        assert inside / total > 0.75, f"{path.name}: only {inside / total:.0%} of the difference is on the face"
        face_rms = np.sqrt(inside / (3 * face_area))
        assert face_rms > 5, f"{path.name}: the face barely differs from {info['original']} (rms {face_rms:.1f})"


def test_same_seed_same_bytes_other_seed_other_files(tmp_path):
    first = generate_sample_dataset(tmp_path / "a", seed=3, preview=tmp_path / "sheet.png", **MINI_SET)
    generate_sample_dataset(tmp_path / "b", seed=3, **MINI_SET)
    generate_sample_dataset(tmp_path / "c", seed=4, **MINI_SET)
    digest_a, digest_b, digest_c = (_digest(tmp_path / k) for k in "abc")
    assert len(digest_a) == 3 + 1 + 2 and digest_a == digest_b
    assert set(digest_a).isdisjoint(set(digest_c) - {"dfdc_train_part_0/metadata.json",
                                                     "test_videos/metadata.json"})
    assert set(digest_a.values()).isdisjoint(digest_c.values())
    # rerunning into the same folder: same arguments rewrite the same bytes, others need overwrite=True
    generate_sample_dataset(tmp_path / "b", seed=3, **MINI_SET)
    assert _digest(tmp_path / "b") == digest_a
    with pytest.raises(SampleDatasetError, match="belongs to another dataset"):
        generate_sample_dataset(tmp_path / "b", seed=4, **MINI_SET)
    generate_sample_dataset(tmp_path / "b", seed=4, overwrite=True, **MINI_SET)
    assert _digest(tmp_path / "b") == digest_c
    # the preview: columns real, fake, fake; rows frame, face close-up, |fake - real| x4
    sheet = cv2.imread(str(first.preview))
    width, height = MINI_SET["size"]
    assert sheet.shape == (3 * height, 3 * width, 3)
    real_difference = sheet[2 * height + 20:3 * height - 1, 1:width - 1]  # below the caption, inside the frame line
    fake_differences = sheet[2 * height + 20:, width:]
    assert real_difference.max() == 0 and np.percentile(fake_differences, 99) > 60


@pytest.mark.parametrize("arguments, message", [
    (dict(parts=0), "no training video"),
    (dict(reals_per_part=0), "no training video"),
    (dict(fakes_per_real=0), "fakes_per_real"),
    (dict(size=(64, 48)), "too small for a detectable face"),
    (dict(size=(321, 240)), "even"),
    (dict(seconds=0.01), "less than one frame"),
    (dict(seed=-1), "must not be negative"),
])
def test_bad_arguments_are_clear_errors(tmp_path, arguments, message):
    with pytest.raises(SampleDatasetError, match=message) as error:
        generate_sample_dataset(tmp_path / "out", **{**MINI_SET, **arguments})
    assert isinstance(error.value, ValueError)
    assert not list((tmp_path / "out").glob("*/*.mp4"))


def test_unwritable_out_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SampleDatasetError, match="cannot write to"):
        generate_sample_dataset(blocker / "data", **MINI_SET)


def test_cli_exits_2_on_bad_arguments(tmp_path, capsys):
    assert main([str(tmp_path / "x"), "--reals-per-part", "0"]) == 2
    assert "no training video" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "sample_data.make_sample_dataset", str(tmp_path / "y"),
                           "--size", "64x48"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "too small" in done.stderr
    assert not (tmp_path / "y").exists() or not list((tmp_path / "y").iterdir())
