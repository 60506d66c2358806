"""The face-track clips stage on real videos: an FF++ pair, a generated two-person video, the sample set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.clips import read_clip
from core.geometry import face_to_model_input
from core.video import iter_frames
from datasets.dfdc import METADATA_NAME
from datasets.layout import DataLayout
from preprocessing.detect_original_faces import detect_original_faces
from preprocessing.extract_clips import extract_clips
from preprocessing.pipeline import preprocess
from tests.conftest import copy_tree

SIDE_PX = 128  # the default --clip-size


def _make_root(root: Path, videos: dict[Path, dict]) -> Path:
    """A DATA_ROOT whose one part links ``videos`` (path -> metadata entry)."""
    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True)
    for path in videos:
        (part / path.name).symlink_to(path.resolve())
    (part / METADATA_NAME).write_text(json.dumps({path.name: entry for path, entry in videos.items()}))
    return root


def _index(root: Path, video: str) -> dict:
    return json.loads(DataLayout(root).clips_index_path(video).read_text())


def _plan(index: dict) -> list[tuple]:
    return [(c["file"], c["person"], c["frames"], c["region"]) for c in index["clips"]]


def _raw_clip(video: Path, clip: dict) -> np.ndarray:
    """The clip cut again from the video by its index entry, without the codec."""
    x1, y1, x2, y2 = clip["region"]
    return np.stack([face_to_model_input(frame[y1:y2, x1:x2], SIDE_PX)
                     for _, frame in iter_frames(video, clip["frames"])])


def _ring_and_centre(diff: np.ndarray, content: np.ndarray) -> tuple[float, float]:
    """Mean of a (frames, side, side, 3) difference over the clip's outer eighth (the margin around the
    face, zero padding left out) and over its central third (the face)."""
    per_pixel = diff.mean(axis=(0, 3))
    band = SIDE_PX // 8
    ring = np.zeros(per_pixel.shape, bool)
    ring[:band], ring[-band:], ring[:, :band], ring[:, -band:] = True, True, True, True
    centre = per_pixel[SIDE_PX // 3:2 * SIDE_PX // 3, SIDE_PX // 3:2 * SIDE_PX // 3]
    return float(per_pixel[ring & content].mean()), float(centre.mean())


# ---- an FF++ pair (skipped when ../shared/data/real_small is absent) -----------------------------------
@pytest.fixture(scope="module")
def ffpp_pair_root(real_small, tmp_path_factory) -> Path:
    """519.mp4 and its frame-aligned Deepfakes fake 519_515.mp4, boxes by stage 1, clips by the stage."""
    part = real_small / "dfdc_train_part_0"
    root = _make_root(tmp_path_factory.mktemp("ffpp_pair") / "data", {
        part / "519.mp4": {"label": "REAL"}, part / "519_515.mp4": {"label": "FAKE", "original": "519.mp4"}})
    assert detect_original_faces(root, workers=1, progress=False, device="cpu").done == 1
    summary = extract_clips(root, workers=1, progress=False)
    assert (summary.done, summary.failed, summary.warnings) == (1, 0, [])
    return root


@pytest.mark.real_data
def test_ffpp_fake_clip_shares_region_and_frames_and_differs_only_on_the_face(ffpp_pair_root):
    original, fake = _index(ffpp_pair_root, "519"), _index(ffpp_pair_root, "519_515")
    assert original["clips"] and _plan(fake) == _plan(original)
    part = ffpp_pair_root / "dfdc_train_part_0"
    layout = DataLayout(ffpp_pair_root)
    for clip in original["clips"][:3]:
        clips, raws = {}, {}
        for video in ("519", "519_515"):
            clips[video] = read_clip(layout.clip_path(video, clip["file"][:-4])).astype(np.int16)
            raws[video] = _raw_clip(part / f"{video}.mp4", clip).astype(np.int16)
            assert clips[video].shape == (len(clip["frames"]), SIDE_PX, SIDE_PX, 3)
            assert np.abs(clips[video] - raws[video]).mean() < 1.5  # the codec's noise
        content = raws["519"].max(axis=(0, 3)) > 0
        clip_ring, clip_centre = _ring_and_centre(np.abs(clips["519_515"] - clips["519"]), content)
        raw_ring, raw_centre = _ring_and_centre(np.abs(raws["519_515"] - raws["519"]), content)
        # away from the face the clips differ by what the videos differ there plus the codec's noise
        assert clip_ring <= raw_ring + 1.0 and clip_ring < clip_centre / 5
        assert abs(clip_centre - raw_centre) < 2.0
    assert all(c["diff_to_original"] > 10 for c in fake["clips"])


@pytest.mark.real_data
def test_a_long_track_is_cut_into_consecutive_clips_of_at_most_max_frames(ffpp_pair_root):
    index = _index(ffpp_pair_root, "519")
    persons = {c["person"] for c in index["clips"]}
    for person in persons:
        clips = [c for c in index["clips"] if c["person"] == person]
        first, last = clips[0]["track_span"]
        assert [c["chunk"] for c in clips] == list(range(len(clips)))
        frames = [f for c in clips for f in c["frames"]]
        assert frames == list(range(first, first + len(frames)))  # every frame, no gap, no overlap
        assert all(30 <= len(c["frames"]) <= 100 for c in clips)
        assert last - frames[-1] < 30  # only a remainder shorter than the minimum is left out
    assert max(len(c["frames"]) for c in index["clips"]) == 100 and len(index["clips"]) >= 7  # 751 frames


@pytest.mark.real_data
def test_a_centre_cropped_ffpp_fake_is_cut_where_its_pixels_came_from(ffpp_train, tmp_path):
    # FF++ Face2Face cropped this 854 px wide original to 832 px about its centre
    part = ffpp_train / "dfdc_train_part_0"
    root = _make_root(tmp_path / "data", {part / "469.mp4": {"label": "REAL"},
                                          part / "469_481_F2F.mp4": {"label": "FAKE", "original": "469.mp4"}})
    assert detect_original_faces(root, workers=1, progress=False, device="cpu").done == 1
    summary = extract_clips(root, workers=1, progress=False, max_frames=60)
    assert (summary.done, summary.failed, summary.warnings) == (1, 0, [])
    original, fake = _index(root, "469"), _index(root, "469_481_F2F")
    assert fake["offset_px"] == [11, 0] and original["offset_px"] == [0, 0]
    assert original["clips"] and _plan(fake) == _plan(original)
    layout = DataLayout(root)
    clip = original["clips"][0]
    clips = {video: read_clip(layout.clip_path(video, clip["file"][:-4])).astype(np.int16)
             for video in ("469", "469_481_F2F")}
    content = clips["469"].max(axis=(0, 3)) > 0
    ring, centre = _ring_and_centre(np.abs(clips["469_481_F2F"] - clips["469"]), content)
    assert ring < 4 and ring < centre / 3  # cut 11 px off, the margin would differ as much as the face


# ---- a generated two-person video: one real, each person swapped once --------------------------------
@pytest.fixture(scope="module")
def two_person_root(tmp_path_factory) -> Path:
    from sample_data.make_sample_dataset import TWO_PERSON_NAME, generate_two_person_videos

    out = tmp_path_factory.mktemp("two_person")
    generate_two_person_videos(out, scenes=1, seconds=3.0, fps=25, progress=False)
    meta = json.loads((out / TWO_PERSON_NAME / METADATA_NAME).read_text())
    real = next(name for name, entry in meta.items() if entry["label"] == "REAL")
    videos = {out / TWO_PERSON_NAME / real: {"label": "REAL"}}
    for name, entry in meta.items():
        if name != real:
            fake_side = next(p["side"] for p in entry["persons"] if p["label"] == "FAKE")
            videos[out / TWO_PERSON_NAME / f"{fake_side}.mp4"] = {"label": "FAKE", "original": real}
            (out / TWO_PERSON_NAME / name).rename(out / TWO_PERSON_NAME / f"{fake_side}.mp4")
    root = _make_root(out / "data", videos)
    assert detect_original_faces(root, workers=1, progress=False, device="cpu").done == 1
    return root


def test_two_person_video_gives_one_clip_per_person_and_the_swapped_one_differs(two_person_root, tmp_path):
    root = copy_tree(two_person_root, tmp_path / "data")
    summary = extract_clips(root, workers=1, progress=False)
    assert (summary.done, summary.failed, summary.warnings) == (1, 0, [])
    original = next(e.video_id for e in DataLayout(root).scan()[0] if not e.is_fake)
    index = _index(root, original)
    assert [(c["person"], c["chunk"]) for c in index["clips"]] == [(0, 0), (1, 0)]
    width = index["frame_size"][0]
    sides = {}
    for clip in index["clips"]:
        x1, _, x2, _ = clip["region"]
        assert x2 <= width / 2 or x1 >= width / 2  # each region holds one person's half
        sides["left" if x2 <= width / 2 else "right"] = clip["file"]
        assert clip["frames"] == list(range(clip["track_span"][0], clip["track_span"][1] + 1))
    assert set(sides) == {"left", "right"}
    for fake_side, other_side in (("left", "right"), ("right", "left")):
        fake = {c["file"]: c for c in _index(root, fake_side)["clips"]}
        assert _plan(_index(root, fake_side)) == _plan(index)
        assert fake[sides[fake_side]]["diff_to_original"] > 3 * fake[sides[other_side]]["diff_to_original"]


def test_short_tracks_give_no_clip_and_a_changed_boxes_file_redoes_the_item(two_person_root, tmp_path):
    root = copy_tree(two_person_root, tmp_path / "data")
    layout = DataLayout(root)
    original = next(e.video_id for e in layout.scan()[0] if not e.is_fake)
    assert extract_clips(root, workers=1, progress=False).done == 1
    clip_files = sorted(layout.clips_root.rglob("*.mp4"))
    first_bytes = [p.read_bytes() for p in clip_files]
    times = [p.stat().st_mtime_ns for p in clip_files]
    rerun = extract_clips(root, workers=1, progress=False)
    assert (rerun.done, rerun.skipped) == (0, 1)
    assert [p.stat().st_mtime_ns for p in clip_files] == times
    # redone (another --clip-crf and back), the item's clips come out byte for byte as before
    assert extract_clips(root, workers=1, progress=False, crf=20).done == 1
    assert extract_clips(root, workers=1, progress=False).done == 1
    assert [p.read_bytes() for p in clip_files] == first_bytes and [p.stat().st_mtime_ns for p in clip_files] != times

    # the right person leaves after frame 20: a track of 21 frames, shorter than the 30 a clip needs
    boxes_path = layout.boxes_path(original)
    boxes = json.loads(boxes_path.read_text())
    half = _index(root, original)["frame_size"][0] / 2
    for frame, faces in boxes.items():
        if int(frame) > 20 and faces:
            boxes[frame] = [box for box in faces if box[0] < half]
    boxes_path.write_text(json.dumps(boxes))
    changed = extract_clips(root, workers=1, progress=False)
    assert (changed.done, changed.skipped) == (1, 0)
    for video in (original, "left", "right"):
        index = _index(root, video)
        assert len(index["clips"]) == 1 and index["clips"][0]["region"][2] <= half
        assert [t["span"] for t in index["short_tracks"]] == [[0, 20]]
        assert sorted(p.name for p in layout.clips_dir(video).iterdir()) == [index["clips"][0]["file"], "clips.json"]

    # no track long enough: every video gets an empty clip list, and the item is done (with a warning)
    none = extract_clips(root, workers=1, progress=False, min_frames=80, max_frames=100)
    assert (none.done, none.failed, len(none.warnings)) == (1, 0, 1) and "--clip-min-frames 80" in none.warnings[0][1]
    assert all(_index(root, video)["clips"] == [] for video in (original, "left", "right"))
    assert not list(layout.clips_root.rglob("*.mp4"))


# ---- the sample set: the stage in the pipeline, --shard ------------------------------------------------
def test_pipeline_runs_clips_only_with_the_option_and_shards_split_the_items(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    shutil.rmtree(root / "clips", ignore_errors=True)
    layout = DataLayout(root)
    originals = sorted(e.video_id for e in layout.scan()[0] if not e.is_fake)
    assert not layout.clips_root.exists()  # the default pipeline writes none
    clips = {"min_frames": 5}  # the sample videos are 20 frames long
    done_by_shard = []
    for shard in ("0/2", "1/2"):
        summaries = preprocess(root, workers=1, progress=False, shard=shard, clips=clips)
        assert [s.stage for s in summaries][-1] == "extract_clips"
        assert all(s.done == 0 for s in summaries[:-1])  # the other stages were complete already
        done_by_shard.append({p.stem for p in layout.progress_dir("extract_clips").glob("*.json")})
    first, both = done_by_shard
    assert first and first < both and both == set(originals)
    for entry in layout.scan()[0]:
        index = _index(root, entry.video_id)
        assert [(c["file"], c["frames"]) for c in index["clips"]] == [("0_0.mp4", list(range(0, 11)))]
    rerun = preprocess(root, workers=1, progress=False, clips=clips)
    assert rerun[-1].stage == "extract_clips" and (rerun[-1].done, rerun[-1].skipped) == (0, len(originals))


def test_bad_clip_options_are_refused_before_any_work(preprocessed_root):
    for options, message in (({"min_frames": 50, "max_frames": 40}, "--clip-max-frames"),
                             ({"size": 111}, "--clip-size"), ({"crf": 60}, "--clip-crf"),
                             ({"every": 0}, "--clip-every")):
        with pytest.raises(ValueError, match=message):
            extract_clips(preprocessed_root, workers=1, progress=False, **options)
    assert not (preprocessed_root / "clips").exists()
