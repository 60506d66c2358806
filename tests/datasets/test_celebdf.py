"""Celeb-DF v2 read as it ships: the three folders, identities from the idX names, the official test list;
and a tree preprocessed, trained on and scored on its test list with no conversion step."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from datasets.celebdf import TEST_LIST
from datasets.readers import chosen_readers, folder_labels, scan_root
from preprocessing.generate_folds import SPLIT_FOLDS, entry_folds
from tests.datasets.conftest import CELEBDF_TEST_LIST, make_celebdf_tree
from tests.datasets.test_ffpp import _stubs, preprocess_and_train


def _tree(root: Path, test_lines: list[str]) -> Path:
    _stubs(root, ["Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id16_0003.mp4",
                  "YouTube-real/00170.mp4", "Celeb-synthesis/id0_id16_0000.mp4", "Celeb-synthesis/id0_id16_0001.mp4",
                  "Celeb-synthesis/id16_id0_0003.mp4", "Celeb-synthesis/id2_id0_0004.mp4", "Celeb-real/clip.mp4"])
    (root / TEST_LIST).write_text("\n".join(test_lines) + "\n")
    return root


def test_entries_identities_and_the_official_test_list(tmp_path):
    root = _tree(tmp_path, ["1 YouTube-real/00170.mp4", "0 Celeb-synthesis/id0_id16_0001.mp4", "",
                            "1 Celeb-real/id0_0001.mp4", "1 Celeb-synthesis/id16_id0_0003.mp4",
                            "Celeb-real/id0_0000.mp4", "1 Celeb-real/id9_0001.mp4"])
    assert [r.name for r in chosen_readers(root)] == ["celebdf"]
    entries, problems = scan_root(root)
    by_id = {e.video_id: e for e in entries}
    fake = by_id["celebdf_id0_id16_0001"]
    assert (fake.label, fake.original_id, fake.identity_group, fake.split, fake.dataset) == (
        "FAKE", "celebdf_id0_0001", "celebdf_id0", "test", "celebdf")
    assert by_id["celebdf_id16_id0_0003"].identity_group == "celebdf_id16"  # the target celebrity's group
    assert by_id["celebdf_00170"].split == "test" and by_id["celebdf_00170"].identity_group == "celebdf_00170"
    assert by_id["celebdf_id16_id0_0003"].split is None  # its line contradicts its folder: left out of the split
    assert sorted(e.video_id for e in entries if e.split == "test") == ["celebdf_00170", "celebdf_id0_0001",
                                                                        "celebdf_id0_id16_0001"]
    errors = {p.item: p.error for p in problems}
    assert set(errors) == {f"{TEST_LIST}:5", f"{TEST_LIST}:6", "celebdf:Celeb-real/id9_0001.mp4",
                           "celebdf:Celeb-real/clip.mp4", "celebdf_id2_id0_0004"}
    assert "label 1 says REAL but Celeb-synthesis holds FAKE videos" in errors[f"{TEST_LIST}:5"]
    assert "is not '<1|0> <folder>/<file>'" in errors[f"{TEST_LIST}:6"]
    assert "id2_0004.mp4 is missing" in errors["celebdf_id2_id0_0004"]


def test_the_test_list_is_fold_one_and_the_rest_is_dealt_by_target_celebrity(tmp_path):
    root = _tree(tmp_path, ["1 Celeb-real/id0_0000.mp4", "1 YouTube-real/00170.mp4"])
    entries, _ = scan_root(root)
    folds = entry_folds(entries, [], 5)
    assert {v for v, f in folds.items() if f == SPLIT_FOLDS["test"]} == {"celebdf_id0_0000", "celebdf_00170"}
    # the fake of a listed original is not on the list: it goes with its group, not into the test fold
    assert folds["celebdf_id0_id16_0000"] == folds["celebdf_id0_0001"] == folds["celebdf_id0_id16_0001"] != 1
    assert folds["celebdf_id16_0003"] == folds["celebdf_id16_id0_0003"] != 1


def test_a_folder_of_the_tree_gives_the_predictor_its_labels(tmp_path):
    root = _tree(tmp_path, ["0 Celeb-synthesis/id0_id16_0001.mp4"])
    labels = folder_labels(root / "Celeb-synthesis")
    assert labels.source == root
    assert {n: (e.label, e.split) for n, e in labels.entries.items()} == {
        "id0_id16_0000.mp4": ("FAKE", None), "id0_id16_0001.mp4": ("FAKE", "test"),
        "id16_id0_0003.mp4": ("FAKE", None), "id2_id0_0004.mp4": ("FAKE", None)}
    assert folder_labels(root / "Celeb-real", dataset="ffpp") is None


@pytest.mark.slow
def test_a_celebdf_tree_is_preprocessed_trained_on_and_scored_on_its_test_list(clip_pairs, tmp_path, capsys):
    from prediction import cli, outputs

    pairs, real_video = clip_pairs
    root = make_celebdf_tree(tmp_path / "Celeb-DF-v2", pairs)
    checkpoint = preprocess_and_train(root, tmp_path, every=100 if real_video else 10)

    folds = pd.read_csv(root / "folds.csv", dtype={"fold": int}).groupby("video")["fold"].first()
    listed = {f"celebdf_{Path(line.split()[1]).stem}" for line in CELEBDF_TEST_LIST}
    assert {v for v, f in folds.items() if f == 1} == listed
    assert 0 in set(folds) and set(folds) - {0, 1}  # a validation fold and training folds besides the test list

    output = tmp_path / "celebdf_test.csv"
    folders = [root / "Celeb-real", root / "Celeb-synthesis", root / "YouTube-real"]
    code = cli.main(["--test-dir", *map(str, folders), "--split", "test", "--models", str(checkpoint),
                     "--output", str(output), "--frames-per-video", "4", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv(output)
    assert sorted(rows["filename"]) == sorted(line.split()[1] for line in CELEBDF_TEST_LIST)
    summary = json.loads(outputs.metrics_path_for(output).read_text())
    assert (summary["n_labelled"], summary["evaluation"]["overall"]["n_fake"]) == (5, 2)
