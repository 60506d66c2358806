"""The DFDC reader: the parts' metadata.json files and the labels of a test folder."""

from __future__ import annotations

import json

import pytest

from core import errors
from datasets.dfdc import read_labels
from datasets.layout import DataLayout
from datasets.readers import FFPP_METHOD_NAMES, folder_labels


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


def test_ids_and_paths_that_would_leave_their_folder_are_refused_and_named(tmp_path):
    root = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.mp4").write_bytes(b"x")
    absolute = elsewhere / "y.mp4"
    absolute.write_bytes(b"x")
    part = _part(root, "dfdc_train_part_0", {
        "a.mp4": {"label": "REAL"},
        "...mp4": {"label": "REAL"},  # id ".."
        "..mp4": {"label": "REAL"},  # id "."
        ".hidden.mp4": {"label": "REAL"},
        "../../elsewhere/x.mp4": {"label": "REAL"},
        str(absolute): {"label": "REAL"},
        "link/z.mp4": {"label": "REAL"},
    }, ["a.mp4", "...mp4", "..mp4", ".hidden.mp4"])
    (part / "link").symlink_to(elsewhere)
    (elsewhere / "z.mp4").write_bytes(b"x")
    entries, problems = DataLayout(root).scan()
    assert [e.video_id for e in entries] == ["a"]
    errors = {p.item: p.error for p in problems}
    assert set(errors) == {"...mp4", "..mp4", ".hidden.mp4", "x", "y", "z"}
    assert "gives the video id '..', which is '..'" in errors["...mp4"]
    assert "gives the video id '.', which is '.'" in errors["..mp4"]
    assert "starts with a dot" in errors[".hidden.mp4"]
    for item in ("x", "y", "z"):
        assert f"is not inside its part folder {part}" in errors[item] and "metadata.json" in errors[item]


def test_an_id_listed_twice_is_an_error_for_both_and_neither_is_used(tmp_path):
    _part(tmp_path, "dfdc_train_part_0", {"a.mp4": {"label": "REAL"}, "f.mp4": {"label": "FAKE", "original": "a.mp4"},
                                          "b.mp4": {"label": "REAL"}}, ["a.mp4", "f.mp4", "b.mp4"])
    _part(tmp_path, "dfdc_train_part_4", {"a.mp4": {"label": "REAL"}, "b.avi": {"label": "REAL"}},
          ["a.mp4", "b.avi"])
    entries, problems = DataLayout(tmp_path).scan()
    assert [e.video_id for e in entries] == ["f"]  # kept, with a problem: its original is ambiguous
    errors = {p.item: p.error for p in problems}
    assert set(errors) == {"a", "b", "f"}
    for video_id, other in (("a", "dfdc_train_part_4/a.mp4"), ("b", "dfdc_train_part_4/b.avi")):
        assert "listed 2 times" in errors[video_id] and "none of them is used" in errors[video_id]
        assert f"dfdc_train_part_0/{video_id}.mp4" in errors[video_id] and other in errors[video_id]
    assert "names original a, whose id is listed more than once" in errors["f"]


def test_fakes_without_a_real_original_and_values_of_the_wrong_type_are_reported(tmp_path):
    _part(tmp_path, "dfdc_train_part_0", {
        "a.mp4": {"label": "REAL", "original": None},
        "f.mp4": {"label": "FAKE", "original": "a.mp4"},
        "self.mp4": {"label": "FAKE", "original": "self.mp4"},
        "ff.mp4": {"label": "FAKE", "original": "f.mp4"},
        "none.mp4": {"label": "FAKE"},
        "number.mp4": {"label": "FAKE", "original": 123},
        "listed.mp4": {"label": "FAKE", "original": ["a.mp4"]},
        "pathy.mp4": {"label": "FAKE", "original": "../a.mp4"},
        "entry_list.mp4": ["REAL"],
        "entry_text.mp4": "REAL",
        "label_number.mp4": {"label": 1},
    }, ["a.mp4", "f.mp4", "self.mp4", "ff.mp4", "none.mp4", "number.mp4", "listed.mp4", "pathy.mp4",
        "entry_list.mp4", "entry_text.mp4", "label_number.mp4"])
    entries, problems = DataLayout(tmp_path).scan()
    by_id = {e.video_id: e for e in entries}
    assert sorted(by_id) == ["a", "f", "ff", "none", "self"]
    assert by_id["f"].source_id == "a"
    errors = {p.item: p.error for p in problems}
    assert set(errors) == {"self", "ff", "none", "number", "listed", "pathy", "entry_list", "entry_text",
                           "label_number"}
    assert "names itself as its original; it is left out" in errors["self"]
    assert f"names {tmp_path / 'dfdc_train_part_0' / 'f.mp4'}, a fake, as its original" in errors["ff"]
    assert 'names no "original"' in errors["none"]
    assert '"original" of number.mp4 is a number (123)' in errors["number"]
    assert '"original" of listed.mp4 is a list' in errors["listed"]
    assert "'../a.mp4', not the file name of a video" in errors["pathy"]
    assert "the entry of entry_list.mp4 is a list (['REAL']), expected an object" in errors["entry_list"]
    assert "the entry of entry_text.mp4 is a string" in errors["entry_text"]
    assert "label of label_number.mp4 is 1, expected REAL or FAKE" in errors["label_number"]


def test_read_labels_json_and_csv(tmp_path):
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "b.mp4": {"label": "REAL"}}))
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\na.mp4,1\nb.mp4,0\n")
    assert read_labels(meta) == read_labels(table) == {"a.mp4": 1, "b.mp4": 0}
    table.write_text("filename,label\na.mp4,maybe\n")
    with pytest.raises(errors.InputError, match="maybe"):
        read_labels(table)


def test_entries_carry_the_ffpp_method_of_a_repacked_fake_and_the_metadata_word_wins(tmp_path):
    _part(tmp_path, "dfdc_train_part_0", {
        "033.mp4": {"label": "REAL"},
        "033_097_DF.mp4": {"label": "FAKE", "original": "033.mp4"},
        "033_097_FSH.mp4": {"label": "FAKE", "original": "033.mp4", "method": "FaceShifter v2"},
        "abcdefghij.mp4": {"label": "FAKE", "original": "033.mp4"},
    }, ["033.mp4", "033_097_DF.mp4", "033_097_FSH.mp4", "abcdefghij.mp4"])
    entries = {e.video_id: e for e in DataLayout(tmp_path).scan()[0]}
    assert {k: e.method for k, e in entries.items()} == {"033": None, "033_097_DF": "DF",
                                                          "033_097_FSH": "FaceShifter v2", "abcdefghij": None}
    assert {e.dataset for e in entries.values()} == {"dfdc"}
    labels = folder_labels(tmp_path / "dfdc_train_part_0")
    assert {n: e.method for n, e in labels.entries.items()} == {"033.mp4": None, "033_097_DF.mp4": "DF",
                                                                "033_097_FSH.mp4": "FaceShifter v2",
                                                                "abcdefghij.mp4": None}
    assert labels.source == tmp_path / "dfdc_train_part_0" / "metadata.json"
    assert folder_labels(tmp_path) is None  # no reader knows a folder without labels


@pytest.mark.real_data
def test_the_methods_of_ffpp_train_come_from_the_reader(ffpp_train):
    entries, _ = DataLayout(ffpp_train).scan()
    methods = {e.video_id: e.method for e in entries if e.is_fake}
    assert set(methods.values()) == set(FFPP_METHOD_NAMES)  # the five methods of the folder's README
    assert all(e.method is None for e in entries if not e.is_fake)
    labels = folder_labels(ffpp_train / "dfdc_train_part_0")
    assert {n: e.method for n, e in labels.entries.items() if e.is_fake} == {f"{k}.mp4": m for k, m in methods.items()}


def test_identity_groups_join_ffpp_pairs_and_leave_fakes_without_an_original_out(tmp_path):
    names = {"000.mp4": None, "001.mp4": None, "000_001_DF.mp4": "000.mp4", "001_000_NT.mp4": "001.mp4",
             "002.mp4": None, "002_099_DF.mp4": "002.mp4", "lost_fake.mp4": "gone.mp4"}
    _part(tmp_path, "dfdc_train_part_0", {n: {"label": "FAKE" if o else "REAL", "original": o}
                                          for n, o in names.items()}, list(names))
    groups = {e.video_id: e.identity_group for e in DataLayout(tmp_path).scan()[0]}
    assert groups == {"000": "000", "001": "000", "000_001_DF": "000", "001_000_NT": "000", "002": "002",
                      "002_099_DF": "002", "lost_fake": None}
