"""predict_folder.py / predict_submission.sh: rows, scores, report, checkpoint discovery, exit codes."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

import predict_folder
from predict_folder import find_checkpoints, read_labels
from tests.prediction.conftest import BAD_VIDEOS, FRAMES_PER_VIDEO
from training.zoo.checkpoints import save_checkpoint
from training.zoo.classifiers import DeepFakeClassifier

REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_csv(path: Path) -> list[tuple[str, float]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["filename", "label"]
    return [(name, float(value)) for name, value in rows[1:]]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, test_videos, bad_inputs) -> Path:
    """The generated test videos plus corrupt, zero-frame, face-less and text-as-mp4 files and non-videos."""
    folder = tmp_path_factory.mktemp("mixed") / "test_videos"
    shutil.copytree(test_videos, folder)
    for path in bad_inputs.values():
        shutil.copy(path, folder / path.name)
    return folder


def test_folder_rows_scores_and_report(mixed_folder, project_checkpoint, tmp_path, caplog):
    # labels for every video, the bad ones included, given as a CSV (the folder's metadata.json is ignored)
    metadata = json.loads((mixed_folder / "metadata.json").read_text())
    labels = {name: int(info["label"] == "FAKE") for name, info in metadata.items()}
    labels.update({"corrupt.mp4": 1, "zero_frames.mp4": 0, "faceless.mp4": 0, "text_named.mp4": 1})
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("filename,label\n" + "".join(f"{k},{v}\n" for k, v in sorted(labels.items())))
    output = tmp_path / "out" / "submission.csv"
    report = tmp_path / "report"

    rc = predict_folder.main(["--test-dir", str(mixed_folder), "--models", str(project_checkpoint),
                              "--output", str(output), "--frames-per-video", str(FRAMES_PER_VIDEO),
                              "--labels", str(labels_csv), "--report", str(report), "--report-videos", "3"])
    assert rc == 0

    rows = _read_csv(output)
    mp4s = sorted(p.name for p in mixed_folder.iterdir() if p.suffix == ".mp4")
    assert [name for name, _ in rows] == mp4s  # every mp4, sorted; no row for .txt / .jpg / .json
    predictions = dict(rows)
    for name in BAD_VIDEOS:
        assert predictions[name] == 0.5
        assert any(name in r.getMessage() for r in caplog.records), f"no logged reason for {name}"
    assert all(0 <= p <= 1 for p in predictions.values())

    metrics = json.loads(predict_folder.metrics_path_for(output).read_text())
    assert metrics["fallbacks"] == {"total": 4, "unreadable": 3, "no_face": 1, "error": 0}
    assert set(metrics["fallback_videos"]) == set(BAD_VIDEOS)
    assert metrics["n_labelled"] == len(mp4s) and metrics["n_unlabelled"] == 0
    y = [labels[name] for name, _ in rows]
    p = [prob for _, prob in rows]
    assert metrics["log_loss"] == pytest.approx(sk_log_loss(y, p), abs=1e-9)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(np.mean((np.array(p) > 0.5) == np.array(y)))

    index = report / "index.html"
    page = index.read_text()
    targets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert "histogram.png" in targets
    strips = [t for t in targets if t.startswith("strips/")]
    sheets = [t for t in targets if t.startswith("faces/")]
    # the 3 labelled videos with faces and the largest log loss, each with a sheet of all its scored faces
    good = [n for n in mp4s if n not in BAD_VIDEOS]
    shown = sorted(good, key=lambda n: -sk_log_loss([labels[n]], [predictions[n]], labels=[0, 1]))[:3]
    assert len(good) > 3
    assert [Path(t).stem for t in strips[::2]] == [Path(n).stem for n in shown]  # each strip: link + image
    assert [Path(t).stem for t in sheets[::2]] == [Path(n).stem for n in shown]
    import cv2

    for name in shown:
        n_faces = int(re.search(rf"<td>{re.escape(name)}</td>(?:<td>[^<]*</td>){{3}}<td>(\d+)</td>", page).group(1))
        sheet = cv2.imread(str(report / "faces" / f"{Path(name).stem}.png"))
        assert sheet.shape[:2] == (-(-n_faces // 8) * 112, min(n_faces, 8) * 112), name
    for target in targets:
        path = (report / target).resolve()
        assert path.is_file() and path.stat().st_size > 0, target
    assert output.resolve() in {(report / t).resolve() for t in targets}
    for name in BAD_VIDEOS:
        assert name in page  # the fallbacks table


def test_winner_checkpoint_through_cli_on_one_video(test_videos, winner_checkpoint, tmp_path, capsys):
    video = sorted(test_videos.glob("*.mp4"))[0]
    output = tmp_path / "winner.csv"
    rc = predict_folder.main(["--video", str(video), "--models", str(winner_checkpoint),
                              "--output", str(output), "--frames-per-video", "2", "--tta"])
    assert rc == 0
    rows = _read_csv(output)
    assert [n for n, _ in rows] == [video.name] and rows[0][1] != 0.5
    # scored with the metadata.json next to the video; one video, so AUC is undefined (null)
    metrics = json.loads((tmp_path / "winner.metrics.json").read_text())
    assert metrics["n_labelled"] == 1 and metrics["auc"] is None and metrics["settings"]["tta"] is True
    assert metrics["models"] == [str(winner_checkpoint)] and metrics["fallbacks"]["total"] == 0
    label = json.loads((test_videos / "metadata.json").read_text())[video.name]["label"] == "FAKE"
    assert metrics["log_loss"] == pytest.approx(sk_log_loss([int(label)], [rows[0][1]], labels=[0, 1]))
    out = capsys.readouterr().out
    assert f"log loss {metrics['log_loss']:.4f}" in out


def test_bad_input_exits_2_with_a_clear_message(tmp_path, project_checkpoint, test_videos, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    cases = [
        (["--test-dir", str(tmp_path / "missing")], "does not exist"),
        (["--test-dir", str(empty)], "holds no .mp4"),
        (["--test-dir", str(test_videos), "--weights-dir", str(empty)], "no checkpoint"),
        (["--test-dir", str(test_videos), "--models", str(tmp_path / "nope_best")], "nope_best does not exist"),
    ]
    # a checkpoint that does not fit: Lite0 weights whose config names another encoder
    wrong = tmp_path / "wrong_encoder_best"
    state = torch.load(project_checkpoint, map_location="cpu", weights_only=False)
    torch.save({"state_dict": state["state_dict"], "config": {"encoder": "tf_efficientnet_b0_ns", "size": 96}},
               wrong)
    cases.append((["--test-dir", str(test_videos), "--models", str(wrong)], "does not fit"))
    garbage = tmp_path / "garbage_best"
    garbage.write_text("not a checkpoint")
    cases.append((["--test-dir", str(test_videos), "--models", str(garbage)], "cannot be read"))
    for args, message in cases:
        output = tmp_path / "never.csv"
        assert predict_folder.main(args + ["--output", str(output)]) == 2, args
        err = capsys.readouterr().err
        assert "error:" in err and message in err, (args, err)
        assert not output.exists()


def test_find_checkpoints_prefers_best_then_last(tmp_path):
    for name in ["a_0_best", "a_0_last", "a_0_3", "a_0_args.json", "b_1_last", "c_2_best.pth",
                 "events.out.tfevents.1_last", ".tmp123_best"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d_0_last").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_checkpoints(tmp_path)]
    assert found == ["a_0_best", "b_1_last", "c_2_best.pth", "sub/d_0_last"]
    assert find_checkpoints(tmp_path / "none") == []


def test_read_labels_json_and_csv(tmp_path):
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "b.mp4": {"label": "REAL"}}))
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\na.mp4,1\nb.mp4,0\n")
    assert read_labels(meta) == read_labels(table) == {"a.mp4": 1, "b.mp4": 0}
    table.write_text("filename,label\na.mp4,maybe\n")
    with pytest.raises(predict_folder.InputError, match="maybe"):
        read_labels(table)


def test_predict_submission_sh_uses_train_sh_checkpoints(test_videos, tmp_path):
    """The shell entry point with default checkpoints (per run *_best, else *_last) from WEIGHTS_DIR."""
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(1)
    save_checkpoint(weights / "demo_tf_efficientnet_lite0_1_last", DeepFakeClassifier("tf_efficientnet_lite0"),
                    config={"encoder": "tf_efficientnet_lite0", "size": 64})
    (weights / "demo_tf_efficientnet_lite0_1_args.json").write_text("{}")
    output = tmp_path / "sub.csv"
    env = dict(os.environ, WEIGHTS_DIR=str(weights))
    script = str(REPO_ROOT / "predict_submission.sh")
    result = subprocess.run([script, str(test_videos), str(output), "--", "--frames-per-video", "2"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "demo_tf_efficientnet_lite0_1_last" in result.stderr
    assert [n for n, _ in _read_csv(output)] == sorted(p.name for p in test_videos.glob("*.mp4"))
    assert "log loss" in result.stdout

    missing = subprocess.run([script, str(tmp_path / "nowhere"), str(output)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    usage = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr
