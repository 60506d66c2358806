"""bench/learning_curve.py end to end on the preprocessed sample set (4 identity groups, one fold each) with a
tiny config through ./train.sh and predict_folder.py: a subset run, bench/quality.py's run reused for the
training folds' size, a run that trains on the validation fold too; the table; a rerun trains nothing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bench import learning_curve

REPO = learning_curve.REPO_ROOT
TINY_CONFIG = {"encoder": "tf_efficientnet_lite0", "pretrained": "lite0-package", "size": 64, "batch_size": 2,
               "workers": 0, "drop_path_rate": 0, "tensorboard_images": 0, "epochs": 1, "batches_per_epoch": 2,
               "augment": False, "amp": "none"}


@pytest.mark.slow
def test_curve_trains_each_size_once_and_reuses_the_quality_run(four_fold_root, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    work, docs = tmp_path / "work", tmp_path / "benchmarks.md"
    # bench/quality.py's run for seed 111 (real fakes, validation fold 1, test fold 0), in its WORK layout
    quality_weights = work / "weights" / "real_111" / "test0"
    env = {**os.environ, "WEIGHTS_DIR": str(quality_weights), "LOG_DIR": str(work / "logs" / "real_111"),
           "FOLD": "1", "TEST_FOLD": "0", "TRAIN_ARGS": "--set fakes=real"}
    subprocess.run(["./train.sh", str(four_fold_root), "0", str(config), "111"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    argv = ["--data-root", str(four_fold_root), "--work", str(work), "--sizes", "3", "6", "9", "--seeds", "111",
            "--config", str(config), "--predict-args", "--frames-per-video 4 --bootstrap 200",
            "--write-docs", str(docs)]
    assert learning_curve.main(argv) == 0

    # 3: one identity group drawn from the seed; 6: the training folds = the quality run; 9: + validation fold
    assert sorted(p.name for p in (work / "weights").iterdir()) == ["curve_3_111", "curve_9_111", "real_111"]
    run_3 = json.loads(next((work / "weights" / "curve_3_111").glob("*_args.json")).read_text())
    assert run_3["config"]["train_videos"] == 3 and run_3["run"]["train_videos_used"] == 3
    assert not list((work / "weights" / "curve_9_111").glob("*_best"))
    run_9 = json.loads(next((work / "weights" / "curve_9_111").glob("*_args.json")).read_text())
    assert run_9["run"]["no_validation"] is True and run_9["run"]["train_videos_used"] == 9

    rows = [line for line in docs.read_text().splitlines() if line.startswith("| ") and "111" in line]
    assert [r.split(" | ")[:5] for r in rows] == [["| 3", "3", "1", "111", "best"], ["| 6", "6", "all", "111", "best"],
                                                 ["| 9", "9", "all", "111", "last"]]
    assert rows[1].endswith("(quality) |")
    test_videos = json.loads((work / "fold0_videos" / "metadata.json").read_text())
    for name in ("curve_3_111", "curve_6_111", "curve_9_111"):
        metrics = json.loads((work / "predictions" / f"{name}.metrics.json").read_text())
        assert metrics["evaluation"]["overall"]["n_videos"] == len(test_videos) == 3

    stamps = {p: p.stat().st_mtime_ns for p in (work / "weights").rglob("*_last")}
    assert learning_curve.main(argv) == 0  # everything complete: nothing trained or predicted again
    assert {p: p.stat().st_mtime_ns for p in (work / "weights").rglob("*_last")} == stamps
