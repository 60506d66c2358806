"""bench/robustness.py end to end on the generated test videos with a small real checkpoint: corrupted
copies, predictions through predict_folder.py, the table with CIs; a rerun reuses both."""

from __future__ import annotations

import json

import pytest
import torch

from bench import robustness
from datasets.layout import DataLayout
from models.checkpoints import save_checkpoint
from models.classifier2d import DeepFakeClassifier


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("robust_ckpt") / "demo_tf_efficientnet_lite0_0_best"
    save_checkpoint(path, DeepFakeClassifier("tf_efficientnet_lite0").eval(),
                    config={"encoder": "tf_efficientnet_lite0", "size": 96})
    return path


@pytest.mark.slow
def test_scores_each_corruption_and_reuses_what_is_unchanged(sample_root, small_checkpoint, tmp_path):
    test_dir = DataLayout(sample_root).test_videos_dir
    work, docs = tmp_path / "work", tmp_path / "benchmarks.md"
    argv = ["--models", str(small_checkpoint), "--test-dir", str(test_dir), "--work", str(work),
            "--corruptions", "blur:5", "--predict-args", "--frames-per-video 4 --bootstrap 200",
            "--write-docs", str(docs)]
    assert robustness.main(argv) == 0

    rows = {row["corruption"]: row for row in json.loads((work / "robustness.json").read_text())}
    assert list(rows) == ["none", "blur:5"]
    n_videos = len(list(test_dir.glob("*.mp4")))
    for name, row in rows.items():
        assert row["overall"]["n_videos"] == n_videos, name
        assert row["predict_s"] > 0, name
        assert set(row["overall"]["ci"]) >= {"auc", "average_precision", "log_loss"}, name
    assert len(list((work / "corrupted" / "blur_5").glob("*.mp4"))) == n_videos
    # the copies differ from the originals, so the scores do
    assert rows["blur:5"]["overall"]["log_loss"] != rows["none"]["overall"]["log_loss"]

    text = docs.read_text()
    assert robustness.SECTION in text and "| blur:5 | Gaussian blur, kernel 21 px" in text
    assert "AUC - clean" in text and "[" in text.split("| none |")[1].split("\n")[0]

    assert robustness.main(argv) == 0  # nothing changed: copies and predictions reused
    again = {row["corruption"]: row for row in json.loads((work / "robustness.json").read_text())}
    assert all(row["predict_s"] == 0 and row["corrupt_s"] == 0 for row in again.values())
    assert again["blur:5"]["overall"] == rows["blur:5"]["overall"]


def test_refuses_a_folder_without_labels(small_checkpoint, tmp_path, capsys):
    assert robustness.main(["--models", str(small_checkpoint), "--test-dir", str(tmp_path)]) == 2
    assert "metadata.json is missing" in capsys.readouterr().err
