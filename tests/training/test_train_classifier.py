"""The training loop on the preprocessed sample set with a real (small) ImageNet encoder on the CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.run_control import LOCKS_FOLDER
from models.checkpoints import load_model, read_checkpoint
from training.pipelines.train_classifier import TrainOptions, main, train
from training.tools.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
NAME = "DeepFakeClassifier_tf_efficientnet_lite0_111"
TINY = ["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=64", "batch_size=4", "workers=0",
        "drop_path_rate=0", "tensorboard_images=2", 'optimizer={"type": "Adam", "lr": 0.001}',
        "schedule.type=constant"]


def _options(root, tmp_path, *extra, **kwargs) -> TrainOptions:
    return TrainOptions(data_dir=str(root), overrides=TINY + list(extra), seed=111, progress=False,
                        output_dir=str(tmp_path / "weights"), log_dir=str(tmp_path / "logs"), **kwargs)


def test_training_lowers_the_loss_and_writes_checkpoints_logs_and_config(preprocessed_root, tmp_path):
    # no augmentation: the same crops each epoch, so the loss must fall
    result = train(_options(preprocessed_root, tmp_path, "epochs=4", "val_every=2", "augment=false",
                            no_hardcore=True))
    losses = result.step_losses
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    weights = tmp_path / "weights"
    names = {p.name for p in weights.iterdir()}
    # keep_checkpoints (default 3): the newest three epochs, plus best and last
    assert {f"{NAME}_{e}" for e in range(1, 4)} | {f"{NAME}_last", f"{NAME}_best", f"{NAME}_args.json"} <= names
    assert f"{NAME}_0" not in names
    assert not any(n.startswith(".tmp") for n in names)
    resolved = json.loads((weights / f"{NAME}_args.json").read_text())
    assert resolved["config"]["size"] == 64 and resolved["config"]["augment"] is False
    assert resolved["run"]["fold"] == 0 and resolved["run"]["seed"] == 111
    assert (tmp_path / "logs" / NAME / "args.json").is_file()
    events = list((tmp_path / "logs" / NAME).glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(events[0]))
    board.Reload()
    assert {"train/loss", "train/lr", "train/fake_loss", "train/real_loss", "val/auc",
            "val/balanced_log_loss"} <= set(board.Tags()["scalars"])
    assert "train/images" in board.Tags()["images"]
    assert [e.value for e in board.Scalars("train/loss")] == pytest.approx(losses)
    last = read_checkpoint(weights / f"{NAME}_last")
    assert last["epoch"] == 3 and {"optimizer", "scheduler", "scaler", "best_score", "config"} <= set(last)
    assert 0 <= last["metrics"]["auc"] <= 1 and last["metrics"]["n_videos"] > 0
    best = read_checkpoint(weights / f"{NAME}_best")
    assert best["best_score"] == pytest.approx(min(best["best_score"], last["best_score"]))
    loaded = load_model(weights / f"{NAME}_best")
    assert loaded.encoder == "tf_efficientnet_lite0" and loaded.input_size == 64


def test_resume_continues_bit_for_bit(preprocessed_root, tmp_path):
    straight = train(_options(preprocessed_root, tmp_path / "a", "epochs=2", "val_every=10"))
    first = train(_options(preprocessed_root, tmp_path / "b", "epochs=2", "val_every=10", stop_after=1))
    assert first.epochs_run == [0]
    # a loader worker process this time: the data must not depend on where it is made
    resumed = train(_options(preprocessed_root, tmp_path / "b", "epochs=2", "val_every=10", "workers=1",
                             resume=str(tmp_path / "b" / "weights" / f"{NAME}_last")))
    assert resumed.epochs_run == [1]
    assert len(straight.step_losses) == 4
    assert first.step_losses + resumed.step_losses == straight.step_losses
    a = read_checkpoint(tmp_path / "a" / "weights" / f"{NAME}_last")
    b = read_checkpoint(tmp_path / "b" / "weights" / f"{NAME}_last")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes_train_and_only_rank0_writes(preprocessed_root, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1",
               OMP_NUM_THREADS="1")
    overrides = [a for o in TINY + ["batch_size=2", "epochs=1"] for a in ("--set", o)]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "training.pipelines.train_classifier",
               "--data-dir", str(preprocessed_root), "--output-dir", str(tmp_path / "weights"),
               "--log-dir", str(tmp_path / "logs"), "--no-progress", "--device", "cpu", *overrides]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count('"name"') == 1, "only rank 0 prints the summary"
    names = sorted(p.name for p in (tmp_path / "weights").iterdir() if p.name != LOCKS_FOLDER)
    assert names == sorted([f"{NAME}_0", f"{NAME}_last", f"{NAME}_best", f"{NAME}_args.json"])
    assert len(list((tmp_path / "logs").rglob("events.out.tfevents.*"))) == 1
    checkpoint = read_checkpoint(tmp_path / "weights" / f"{NAME}_last")
    assert checkpoint["run"]["world_size"] == 2 and checkpoint["run"]["steps_per_epoch"] == 2
    assert not any(k.startswith("module.") for k in checkpoint["state_dict"])


def test_bad_config_and_fold_are_clear_errors(preprocessed_root, tmp_path, capsys):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"encoder": "tf_efficientnet_lite0", "learning_rate": 0.1}))
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        train(TrainOptions(data_dir=str(preprocessed_root), config=str(config), output_dir=str(tmp_path)))
    code = main(["--data-dir", str(preprocessed_root), "--config", str(config), "--output-dir", str(tmp_path)])
    assert code == 2 and "bad.json: unknown key 'learning_rate'" in capsys.readouterr().err
    code = main(["--data-dir", str(preprocessed_root), "--fold", "5", "--output-dir", str(tmp_path),
                 *[a for o in TINY for a in ("--set", o)]])
    assert code == 2 and "no rows with fold 5" in capsys.readouterr().err
    assert not (tmp_path / "weights").exists()
