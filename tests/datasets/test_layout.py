"""The DATA_ROOT layout: output paths, and an unusable root is fatal with a clear message."""

from __future__ import annotations

import pytest

from datasets.layout import DataLayout, LayoutError, parse_crop_name


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


