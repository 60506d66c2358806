"""The DFDC reader: the parts' metadata.json files and the labels of a test folder."""

from __future__ import annotations

import json

import pytest

from core import errors
from datasets.dfdc import read_labels
from datasets.layout import DataLayout


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


def test_read_labels_json_and_csv(tmp_path):
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "b.mp4": {"label": "REAL"}}))
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\na.mp4,1\nb.mp4,0\n")
    assert read_labels(meta) == read_labels(table) == {"a.mp4": 1, "b.mp4": 0}
    table.write_text("filename,label\na.mp4,maybe\n")
    with pytest.raises(errors.InputError, match="maybe"):
        read_labels(table)
