"""FaceForensics++ and DFD read as they ship: the official split, the compression, methods and identity
pairs from the paths; and a download preprocessed, trained on and scored with no conversion step."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from datasets.ffpp import SPLITS_DIR, official_split
from datasets.layout import DataLayout, LayoutError
from datasets.readers import ReaderOptions, chosen_readers, folder_labels, scan_root
from preprocessing.generate_folds import SPLIT_FOLDS, entry_folds
from tests.datasets.conftest import SPLIT_PAIRS, make_ffpp_tree

REPO = Path(__file__).resolve().parents[2]


def _stubs(root: Path, paths: list[str]) -> Path:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")
    return root


YOUTUBE = "original_sequences/youtube/{c}/videos/{n}.mp4"
METHOD = "manipulated_sequences/{m}/{c}/videos/{n}.mp4"


def test_the_shipped_split_is_the_faceforensics_pair_lists():
    pairs = {split: json.loads((SPLITS_DIR / f"{split}.json").read_text()) for split in ("train", "val", "test")}
    assert {split: len(p) for split, p in pairs.items()} == {"train": 360, "val": 70, "test": 70}
    ids = [video for p in pairs.values() for pair in p for video in pair]
    assert sorted(ids) == [f"{i:03d}" for i in range(1000)]  # every FF++ video once
    split_of, partner = official_split()
    assert (split_of["033"], partner["033"], split_of["720"], split_of["953"]) == ("train", "097", "val", "test")
    assert "FaceForensics" in (SPLITS_DIR / "SOURCE.md").read_text()


def test_ids_labels_originals_methods_splits_and_pairs_come_from_the_paths(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="c23", n=n) for n in ("033", "097", "953")]
                  + [METHOD.format(m="Deepfakes", c="c23", n="033_097"), METHOD.format(m="NeuralTextures", c="c23",
                                                                                      n="097_033"),
                     METHOD.format(m="FaceShifter", c="c23", n="974_953"),  # its original 974 is not downloaded
                     YOUTUBE.format(c="c40", n="033"), "original_sequences/youtube/c23/videos/notes.mp4",
                     "manipulated_sequences/Deepfakes/masks/videos/033_097.mp4"])
    assert [r.name for r in chosen_readers(root)] == ["ffpp"]
    entries, problems = DataLayout(root).scan()
    by_id = {e.video_id: e for e in entries}
    assert sorted(by_id) == ["ffpp_c23_033", "ffpp_c23_033_097_DF", "ffpp_c23_097", "ffpp_c23_097_033_NT",
                             "ffpp_c23_953", "ffpp_c23_974_953_FSH"]
    fake = by_id["ffpp_c23_097_033_NT"]
    assert (fake.label, fake.original_id, fake.method, fake.dataset, fake.split) == (
        "FAKE", "ffpp_c23_097", "NT", "ffpp", "train")
    assert {by_id[i].identity_group for i in ("ffpp_c23_033", "ffpp_c23_097", "ffpp_c23_033_097_DF")} == {"ffpp_033"}
    assert by_id["ffpp_c23_953"].split == "test" and by_id["ffpp_c23_033"].method is None
    errors = {p.item: p.error for p in problems}
    assert set(errors) == {"ffpp:notes.mp4", "ffpp_c23_974_953_FSH"}
    assert "not named like a ffpp video (033.mp4)" in errors["ffpp:notes.mp4"]
    assert "974.mp4 is missing" in errors["ffpp_c23_974_953_FSH"]
    c40, _ = DataLayout(root, options=ReaderOptions("c40")).scan()
    assert [e.video_id for e in c40] == ["ffpp_c40_033"]


def test_a_tree_without_the_chosen_compression_says_which_it_has(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="raw", n="033"), METHOD.format(m="Face2Face", c="c40", n="033_097")])
    entries, problems = scan_root(root)
    assert entries == [] and len(problems) == 1
    assert "without c23 videos (found: c0, c40); pass --compression c0" in problems[0].error
    raw, _ = scan_root(root, options=ReaderOptions("raw"))  # c0 ships in folders named raw
    assert [e.video_id for e in raw] == ["ffpp_c0_033"]
    with pytest.raises(ValueError, match="--compression c99"):
        ReaderOptions("c99")


def test_dfd_is_its_own_dataset_grouped_by_target_actor(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="c23", n="033"),
                             "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
                             "original_sequences/actors/c23/videos/02__kitchen_pan.mp4",
                             "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"])
    assert sorted(r.name for r in chosen_readers(root)) == ["dfd", "ffpp"]
    entries = {e.video_id: e for e in scan_root(root)[0]}
    fake = entries["dfd_c23_01_02__exit_phone_room__YVGY8LOK"]
    assert (fake.original_id, fake.method, fake.dataset, fake.split, fake.identity_group) == (
        "dfd_c23_01__exit_phone_room", "DFD", "dfd", None, "dfd_01")
    assert entries["dfd_c23_02__kitchen_pan"].identity_group == "dfd_02"
    assert [e.video_id for e in scan_root(root, dataset="ffpp")[0]] == ["ffpp_c23_033"]
    with pytest.raises(LayoutError, match="--dataset celebdf: .* holds no Celeb-real"):
        DataLayout(root, dataset="celebdf").check()
    with pytest.raises(LayoutError, match="unknown dataset reader 'nope'"):
        DataLayout(root, dataset="nope").check()


def test_two_datasets_in_one_root_do_not_collide(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="c23", n="033"), "dfdc_train_part_0/033.mp4"])
    (root / "dfdc_train_part_0" / "metadata.json").write_text(json.dumps({"033.mp4": {"label": "REAL"}}))
    entries, problems = scan_root(root)
    assert problems == [] and [(e.video_id, e.dataset) for e in entries] == [("033", "dfdc"), ("ffpp_c23_033", "ffpp")]


def test_folds_follow_the_split_and_dealt_groups_skip_the_test_fold(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="c23", n=n) for pair in SPLIT_PAIRS.values() for n in pair]
                  + [METHOD.format(m="Deepfakes", c="c23", n=f"{a}_{b}") for a, b in SPLIT_PAIRS.values()]
                  + [f"original_sequences/actors/c23/videos/{a:02d}__scene.mp4" for a in range(1, 7)]
                  + [f"manipulated_sequences/DeepFakeDetection/c23/videos/{a:02d}_{a + 1:02d}__scene__X.mp4"
                     for a in range(1, 6)])
    entries, _ = scan_root(root)
    folds = entry_folds(entries, [], 5)
    for split, (a, b) in SPLIT_PAIRS.items():
        for video in (f"ffpp_c23_{a}", f"ffpp_c23_{b}", f"ffpp_c23_{a}_{b}_DF"):
            assert folds[video] == SPLIT_FOLDS[split], video
    dfd = {e.video_id: folds[e.video_id] for e in entries if e.dataset == "dfd"}
    assert len(dfd) == 11 and set(dfd.values()) == {0, 2, 3, 4, 5}  # five folds dealt, fold 1 is FF++'s test
    assert folds["dfd_c23_01__scene"] == folds["dfd_c23_01_02__scene__X"]  # a fake goes with its target actor


def test_a_method_folder_gives_the_predictor_its_labels(tmp_path):
    root = _stubs(tmp_path, [YOUTUBE.format(c="c23", n="033"), METHOD.format(m="Face2Face", c="c23", n="033_097")])
    labels = folder_labels(root / "manipulated_sequences" / "Face2Face" / "c23" / "videos")
    assert labels.source == root
    (name, entry), = labels.entries.items()
    assert (name, entry.label, entry.method, entry.dataset, entry.split) == ("033_097.mp4", "FAKE", "F2F", "ffpp",
                                                                            "train")
    reals = folder_labels(root / "original_sequences" / "youtube" / "c23" / "videos")
    assert [e.label for e in reals.entries.values()] == ["REAL"]
    assert folder_labels(root / "original_sequences" / "youtube") is None


# ---- a download used as it ships: preprocess, train, predict ----------------------------------------------


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1",
               OMP_NUM_THREADS="1", **extra)
    env.pop("OUTPUT_DIR", None)
    return env


TINY_CONFIG = {"encoder": "tf_efficientnet_lite0", "pretrained": "lite0-package", "size": 64, "batch_size": 4,
               "workers": 0, "drop_path_rate": 0, "tensorboard_images": 0, "epochs": 1, "batches_per_epoch": 2,
               "val_every": 100, "augment": False, "hardcore": False,
               "optimizer": {"type": "Adam", "lr": 0.001}, "schedule": {"type": "constant"}}


def preprocess_and_train(root: Path, tmp_path: Path, every: int) -> Path:
    """``./preprocess_data.sh ROOT`` then ``FOLD=0 TEST_FOLD=1 ./train.sh ROOT 0 CONFIG``; the checkpoint."""
    from prediction.inputs import find_checkpoints

    done = subprocess.run([str(REPO / "preprocess_data.sh"), str(root), "--every", str(every), "--workers", "2",
                           "--no-progress"], env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "failed 0" in done.stdout, done.stdout
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    weights = tmp_path / "weights"
    env = _env(FOLD="0", TEST_FOLD="1", WEIGHTS_DIR=str(weights), LOG_DIR=str(tmp_path / "logs"))
    trained = subprocess.run([str(REPO / "train.sh"), str(root), "0", str(config), "111"], env=env,
                             capture_output=True, text=True, timeout=900)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    (checkpoint,) = find_checkpoints(weights)
    return checkpoint


@pytest.mark.slow
def test_an_ffpp_download_is_preprocessed_trained_on_and_scored_per_method(clip_pairs, tmp_path, capsys):
    from prediction import cli, outputs

    pairs, real_video = clip_pairs
    root = make_ffpp_tree(tmp_path / "FaceForensics++", pairs)
    checkpoint = preprocess_and_train(root, tmp_path, every=100 if real_video else 10)

    folds = pd.read_csv(root / "folds.csv", dtype={"fold": int})
    expected = {n: SPLIT_FOLDS[split] for split, pair in SPLIT_PAIRS.items() for n in pair}
    assert all(video.startswith("ffpp_c23_") for video in folds["video"])
    assert {v: expected[v.split("_")[2]] for v in folds["video"]} == dict(zip(folds["video"], folds["fold"]))
    assert set(folds["fold"]) == {0, 1, 2}

    test_methods = sorted({m for m, _ in pairs[2][2] + pairs[2][3]})
    folders = [root / "original_sequences" / "youtube" / "c23" / "videos"] + [
        root / "manipulated_sequences" / m / "c23" / "videos" for m in test_methods]
    output = tmp_path / "test_split.csv"
    code = cli.main(["--test-dir", *map(str, folders), "--split", "test", "--models", str(checkpoint),
                     "--output", str(output), "--frames-per-video", "4", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv(output)
    test_a, test_b = SPLIT_PAIRS["test"]
    assert sorted(Path(n).name for n in rows["filename"]) == sorted(
        [f"{test_a}.mp4", f"{test_b}.mp4"] + [f"{t}_{s}.mp4" for m, _ in pairs[2][2] for t, s in [(test_a, test_b)]]
        + [f"{t}_{s}.mp4" for m, _ in pairs[2][3] for t, s in [(test_b, test_a)]])
    evaluation = json.loads(outputs.metrics_path_for(output).read_text())["evaluation"]
    codes = {"Deepfakes": "DF", "Face2Face": "F2F", "FaceSwap": "FS", "NeuralTextures": "NT"}
    assert set(evaluation["per_method"]) == {codes[m] for m in test_methods}
    for scores in evaluation["per_method"].values():  # each method against the test split's two reals
        assert scores["n_real"] == 2 and scores["n_fake"] >= 1
    assert "| method DF (Deepfakes) |" in capsys.readouterr().out
