"""DATA_ROOT listing and atomic writes on a real folder tree."""

from __future__ import annotations

import json
import os

import pytest

from core.files import atomic_path, write_json_atomic
from datasets.layout import DataLayout, LayoutError, parse_crop_name


def _part(root, name, metadata, files=()):
    part = root / name
    part.mkdir(parents=True)
    if metadata is not None:
        (part / "metadata.json").write_text(json.dumps(metadata))
    for f in files:
        (part / f).write_bytes(b"x")
    return part


def test_scan_lists_videos_and_reports_problems(tmp_path):
    _part(tmp_path, "dfdc_train_part_10", {"b.mp4": {"label": "REAL"}}, ["b.mp4"])
    _part(tmp_path, "dfdc_train_part_2", {
        "a.mp4": {"label": "REAL", "split": "train", "original": None},
        "f.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"},
        "orphan.mp4": {"label": "FAKE", "original": "gone.mp4"},
        "listed_missing.mp4": {"label": "REAL"},
    }, ["a.mp4", "f.mp4", "orphan.mp4", "stray.txt"])
    _part(tmp_path, "dfdc_train_part_3", None, ["c.mp4"])
    layout = DataLayout(tmp_path)
    assert [p.name for p in layout.parts()] == ["dfdc_train_part_2", "dfdc_train_part_3", "dfdc_train_part_10"]
    entries, problems = layout.scan()
    by_id = {e.video_id: e for e in entries}
    assert sorted(by_id) == ["a", "b", "f", "orphan"]
    assert by_id["f"].is_fake and by_id["f"].source_id == "a" and by_id["a"].source_id == "a"
    assert by_id["b"].part == "dfdc_train_part_10"
    problem_items = sorted(p.item for p in problems)
    assert problem_items == ["dfdc_train_part_3", "listed_missing", "orphan"]
    assert any("metadata.json is missing" in p.error for p in problems)


def test_paths_follow_the_documented_layout(tmp_path):
    layout = DataLayout(tmp_path)
    assert layout.boxes_path("a") == tmp_path / "boxes" / "a.json"
    assert layout.crop_path("f", 10, 0) == tmp_path / "crops" / "f" / "10_0.png"
    assert layout.landmarks_path("a", 10, 1) == tmp_path / "landmarks" / "a" / "10_1.npy"
    assert layout.landmarks68_path("a", 0, 0) == tmp_path / "landmarks68" / "a" / "0_0.npy"
    assert layout.diff_path("f", 20, 0) == tmp_path / "diffs" / "f" / "20_0_diff.png"
    assert layout.folds_csv == tmp_path / "folds.csv"
    assert layout.log_path("extract_crops") == tmp_path / "logs" / "extract_crops.jsonl"
    assert layout.progress_path("extract_crops", "a") == tmp_path / "progress" / "extract_crops" / "a.json"
    assert layout.part_dir(3) == tmp_path / "dfdc_train_part_3"
    assert layout.test_videos_dir == tmp_path / "test_videos"
    assert parse_crop_name("120_3.png") == (120, 3) and parse_crop_name("120_3_diff.png") is None


def test_unusable_root_is_fatal_with_a_clear_message(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        DataLayout(tmp_path / "nope").check()
    with pytest.raises(LayoutError, match="no dfdc_train_part_"):
        DataLayout(tmp_path).check()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "x.json"
    write_json_atomic(target, {"b": 1, "a": 2})
    assert target.read_text() == '{"a": 2, "b": 1}'
    assert target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == '{"a": 2, "b": 1}'
    assert os.listdir(target.parent) == ["x.json"]
