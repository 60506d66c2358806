"""Fakes of another frame size than their original's in stages 2 and 4 (crops and diffs): a centre crop
(FF++ Face2Face, NeuralTextures) is padded back and lines up with its original; any other size is left out
with a warning; markers of the stages' earlier version redo only the items whose outputs change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.video import iter_frames
from datasets.dfdc import METADATA_NAME
from datasets.layout import DataLayout
from preprocessing.detect_original_faces import detect_original_faces
from preprocessing.extract_crops import extract_crops
from preprocessing.generate_diffs import generate_diffs
from preprocessing.runner import VERSION_KEY
from tests.preprocessing.test_preprocessing_runner import snapshot

RUN = dict(workers=1, progress=False)


def _make_root(root: Path, videos: dict[Path, dict]) -> Path:
    """A DATA_ROOT whose one part holds ``videos`` (path -> metadata entry), linked where they lie."""
    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True, exist_ok=True)
    for path in videos:
        if path.parent != part:
            (part / path.name).symlink_to(path.resolve())
    (part / METADATA_NAME).write_text(json.dumps({path.name: entry for path, entry in videos.items()}))
    return root


def _crop(layout: DataLayout, video: str, name: tuple[int, int]) -> np.ndarray:
    return cv2.imread(str(layout.crop_path(video, *name))).astype(np.int16)


def _ring_and_centre(original: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference of two crops over their outer eighth (the margin around the face) and
    over their central third (the face)."""
    diff = np.abs(original - fake).mean(axis=2)
    height, width = diff.shape
    ring = np.zeros(diff.shape, bool)
    band_h, band_w = max(height // 8, 1), max(width // 8, 1)
    ring[:band_h], ring[-band_h:], ring[:, :band_w], ring[:, -band_w:] = True, True, True, True
    return float(diff[ring].mean()), float(diff[height // 3:2 * height // 3, width // 3:2 * width // 3].mean())


def _diff_mean(layout: DataLayout, fake: str) -> float:
    diffs = sorted(layout.diffs_dir(fake).glob("*.png"))
    assert diffs
    return float(np.mean([cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).mean() for path in diffs]))


# ---- a real FF++ Face2Face fake (skipped when ../shared/data/ffpp_train is absent) ----------------------
@pytest.mark.real_data
def test_a_centre_cropped_ffpp_fake_gets_crops_and_diffs_that_line_up_with_its_original(ffpp_train, tmp_path):
    # FF++ Face2Face cropped this 854 px wide original to 832 px about its centre; the Deepfakes fake of the
    # same pair kept the original's size
    part = ffpp_train / "dfdc_train_part_0"
    fake_of = {"label": "FAKE", "original": "469.mp4"}
    root = _make_root(tmp_path / "data", {part / "469.mp4": {"label": "REAL"}, part / "469_481_F2F.mp4": fake_of,
                                          part / "469_481_DF.mp4": fake_of})
    assert detect_original_faces(root, device="cpu", **RUN).done == 1
    crops = extract_crops(root, **RUN)
    diffs = generate_diffs(root, **RUN)
    assert [(s.done, s.failed, s.warnings) for s in (crops, diffs)] == [(1, 0, [])] * 2
    layout = DataLayout(root)
    names = layout.crop_files("469")
    assert names and layout.crop_files("469_481_F2F") == layout.crop_files("469_481_DF") == names
    rings = {fake: [] for fake in ("469_481_F2F", "469_481_DF")}
    for name in names:
        original = _crop(layout, "469", name)
        for fake in rings:
            rings[fake].append(_ring_and_centre(original, _crop(layout, fake, name)))
    ring, centre = np.mean(rings["469_481_F2F"], axis=0)
    # away from the face the two c23 encodes differ by ~2 grey levels, as the frame-aligned Deepfakes fake
    # does; cut 11 px off (the crops of the fake's own pixels), the margin differed by ~17
    assert ring < 4 and ring < centre / 3
    assert ring < np.mean(rings["469_481_DF"], axis=0)[0] + 1.5
    # the SSIM diff masks in the range of the frame-aligned fakes of ffpp_train (12-36; 112 cut 11 px off)
    assert _diff_mean(layout, "469_481_F2F") < 40


# ---- generated: a fake cropped about the centre, a fake rescaled ------------------------------------------
def _write_lossless(frames: list[np.ndarray], path: Path, fps: int = 10) -> Path:
    """An MP4 of ``frames`` that decodes to exactly them (H.264 lossless RGB)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=fps, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


CENTRE_CROP = (8, 7)  # left, top: 320x240 -> 304x226, the size difference halved and rounded down


@pytest.fixture(scope="module")
def resized_fakes_root(sample_root, preprocessed_root, tmp_path_factory) -> Path:
    """Two originals of the sample set with their fakes, stage 1's boxes, and two more fakes of the first
    made from its first fake: that fake cropped about the centre (``<fake>_cc``) and rescaled
    (``<fake>_scaled``)."""
    part = sample_root / "dfdc_train_part_0"
    metadata = json.loads((part / METADATA_NAME).read_text())
    originals = sorted(name for name, entry in metadata.items() if entry["label"] == "REAL")[:2]
    videos = {part / name: metadata[name] for name in sorted(metadata) if name in originals
              or metadata[name].get("original") in originals}
    root = tmp_path_factory.mktemp("resized_fakes") / "data"
    new_part = root / "dfdc_train_part_0"
    new_part.mkdir(parents=True)
    source = next(name for name in sorted(metadata) if metadata[name].get("original") == originals[0])
    frames = [frame for _, frame in iter_frames(part / source)]
    (left, top), (width, height) = CENTRE_CROP, (304, 226)
    stem = Path(source).stem
    fake_entry = {"label": "FAKE", "split": "train", "original": originals[0]}
    videos[_write_lossless([f[top:top + height, left:left + width] for f in frames],
                           new_part / f"{stem}_cc.mp4")] = fake_entry
    videos[_write_lossless([cv2.resize(f, (256, 192), interpolation=cv2.INTER_AREA) for f in frames],
                           new_part / f"{stem}_scaled.mp4")] = fake_entry
    _make_root(root, videos)
    shutil.copytree(preprocessed_root / "boxes", root / "boxes")
    return root


def test_a_centre_cropped_fake_is_cut_where_its_pixels_came_from_and_a_rescaled_one_is_left_out(
        resized_fakes_root, tmp_path):
    root = shutil.copytree(resized_fakes_root, tmp_path / "data", symlinks=True)
    crops, diffs = extract_crops(root, **RUN), generate_diffs(root, **RUN)
    assert [(s.done, s.failed) for s in (crops, diffs)] == [(2, 0)] * 2
    layout = DataLayout(root)
    entries = {entry.video_id: entry for entry in layout.scan()[0]}
    cropped = next(video for video in entries if video.endswith("_cc"))
    source, scaled = cropped[:-3], cropped[:-3] + "_scaled"
    # the rescaled fake: one warning per stage, naming the file, both sizes and what to check; no crop, no diff
    for summary in (crops, diffs):
        [(item, warning)] = summary.warnings
        assert item == entries[source].original_id and str(entries[scaled].path) in warning
        assert "256x192" in warning and "320x240" in warning and "metadata.json" in warning
        logged = [json.loads(line) for line in layout.log_path(summary.stage).read_text().splitlines()]
        assert [line["warning"] for line in logged] == [warning]
    assert not layout.crops_dir(scaled).exists() and not layout.diffs_dir(scaled).exists()
    # the centre crop: the crops of the fake it was cut from, pixel for pixel (the sample faces stay more
    # than 15 px from the frame's edges, so no crop reaches past the cropped frame), the same diff masks
    names = layout.crop_files(cropped)
    assert names and names == layout.crop_files(source) == layout.crop_files(entries[source].original_id)
    for name in names:
        assert np.array_equal(_crop(layout, cropped, name), _crop(layout, source, name))
        diff = layout.diff_path(cropped, *name)
        assert diff.read_bytes() == layout.diff_path(source, *name).read_bytes()


def test_markers_of_the_earlier_version_redo_only_the_items_with_a_fake_of_another_size(
        resized_fakes_root, tmp_path):
    root = shutil.copytree(resized_fakes_root, tmp_path / "data", symlinks=True)
    stages = (extract_crops, generate_diffs)
    assert [stage(root, **RUN).done for stage in stages] == [2, 2]
    expected = snapshot(root)
    markers = sorted((root / "progress").glob("*/*.json"))
    assert len(markers) == 4
    for marker in markers:  # as the version before fakes of another size were handled wrote them
        record = json.loads(marker.read_text())
        assert record["options"].pop(VERSION_KEY) == 2
        marker.write_text(json.dumps(record))
    summaries = [stage(root, **RUN) for stage in stages]
    assert [(s.done, s.skipped) for s in summaries] == [(1, 1)] * 2  # the item with the resized fakes
    assert all(json.loads(m.read_text())["options"][VERSION_KEY] == 2 for m in markers)  # brought up to date
    assert [(s.done, s.skipped) for s in (stage(root, **RUN) for stage in stages)] == [(0, 2)] * 2
    assert snapshot(root) == expected


def test_an_original_whose_only_fake_is_left_out_has_no_diff_and_says_why(resized_fakes_root, tmp_path):
    layout = DataLayout(resized_fakes_root)
    scaled = next(entry for entry in layout.scan()[0] if entry.video_id.endswith("_scaled"))
    original = next(entry for entry in layout.scan()[0] if entry.video_id == scaled.original_id)
    root = _make_root(tmp_path / "data", {original.path: {"label": "REAL"},
                                          scaled.path: {"label": "FAKE", "original": original.path.name}})
    shutil.copytree(resized_fakes_root / "boxes", root / "boxes")
    crops = extract_crops(root, **RUN)
    assert (crops.done, crops.failed, len(crops.warnings)) == (1, 0, 1)  # the original's crops
    diffs = generate_diffs(root, **RUN)
    [(item, error)] = diffs.failures
    assert (diffs.done, item) == (0, original.video_id)
    assert "none of the fakes" in error and scaled.path.name in error and "256x192" in error
