"""The checkpoint reader loads with ``torch.load(weights_only=True)``: this project's files, the winner's
format, and a clear refusal (that runs nothing) for a file that needs a full unpickle."""

from __future__ import annotations

import argparse
import io
import math
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints import CheckpointError, load_model, main, read_checkpoint, save_checkpoint
from models.classifier2d import DeepFakeClassifier

REPO = Path(__file__).resolve().parents[2]
PARITY_CHECKPOINT = REPO.parent / "shared" / "parity" / "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"


def test_this_projects_checkpoint_loads_weights_only_with_all_its_state(tmp_path):
    model = DeepFakeClassifier("tf_efficientnet_lite0")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    for parameter in model.parameters():  # a step with gradients, so the optimizer holds momentum buffers
        parameter.grad = torch.full_like(parameter, 1e-3)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    path = tmp_path / "DeepFakeClassifier_tf_efficientnet_lite0_111_last"
    # what training stores, including the NumPy numbers and paths metrics and run info tend to hold
    save_checkpoint(path, model, {"encoder": "tf_efficientnet_lite0", "size": 64},
                    optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                    epoch=3, best_score=math.inf, metrics={"auc": np.float64(0.75), "n_videos": np.int64(12)},
                    run={"data_dir": tmp_path, "amp_dtype": torch.float32, "resume": None})
    data = read_checkpoint(path)  # weights_only=True inside
    assert data["metrics"] == {"auc": 0.75, "n_videos": 12} and type(data["metrics"]["auc"]) is float
    assert data["run"]["data_dir"] == str(tmp_path) and data["run"]["amp_dtype"] == "torch.float32"
    assert data["epoch"] == 3 and data["best_score"] == math.inf
    restored = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    restored.load_state_dict(data["optimizer"])
    for a, b in zip(optimizer.state.values(), restored.state.values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert load_model(path).input_size == 64
    with pytest.raises(TypeError, match="argparse.Namespace|Namespace cannot go into a checkpoint"):
        save_checkpoint(tmp_path / "x_last", model, {}, args=argparse.Namespace(lr=0.1))


def _numpy1_legacy_save(obj) -> bytes:
    """``obj`` as the winner's files were written: torch's legacy (pre-1.6) format, NumPy 1 module names."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    raw = buffer.getvalue()
    assert b"numpy._core.multiarray" in raw
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_winner_format_with_a_numpy_bce_best_loads_weights_only(tmp_path):
    torch.manual_seed(0)
    model = DeepFakeClassifier("tf_efficientnet_lite0").eval()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "final_555_DeepFakeClassifier_tf_efficientnet_lite0_0_19"
    path.write_bytes(_numpy1_legacy_save({"epoch": 20, "state_dict": state, "bce_best": np.float64(0.2012)}))
    data = read_checkpoint(path)
    assert data["bce_best"] == pytest.approx(0.2012) and data["epoch"] == 20
    loaded = load_model(path, input_size=32)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


@pytest.mark.skipif(not PARITY_CHECKPOINT.is_file(), reason="../shared/parity not present")
def test_the_shared_winner_format_checkpoint_loads_weights_only():
    data = read_checkpoint(PARITY_CHECKPOINT)
    assert any(k.startswith("module.encoder.") for k in data["state_dict"])
    assert load_model(PARITY_CHECKPOINT).encoder == "tf_efficientnet_lite0"


class _Payload:
    """Unpickling this would create a file: the proof that nothing in a refused file runs."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_that_needs_a_full_unpickle_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "code_ran"
    path = tmp_path / "someone_elses_best"
    with open(path, "wb") as stream:
        torch.save({"state_dict": {"w": torch.ones(2)}, "hook": _Payload(str(marker))}, stream)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(path)
    message = str(refused.value)
    assert str(path) in message and "GLOBAL" in message and "run code from the file" in message
    assert "refused as unsafe" in message and "weights_only" not in message
    assert f"convert-trusted {path}" in message
    assert not marker.exists()

    args_file = tmp_path / "with_args_best"
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1, out=Path("/x"))}, args_file)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        read_checkpoint(args_file)
    converted = tmp_path / "with_args_best.plain"
    assert main(["convert-trusted", str(args_file), str(converted)]) == 0
    assert read_checkpoint(converted)["args"] == {"lr": 0.1, "out": "/x"}
    assert main(["convert-trusted", str(args_file), str(converted)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err


class _ShellPayload:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_calling_os_system_is_refused_as_unsafe_and_never_converted(tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "downloaded_best"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 1, "hook": _ShellPayload(str(marker))}, path)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(path)
    message = str(refused.value)
    # torch 2.14's words for a blocked module, quoted; torch's advice to load it anyway, never
    assert f"checkpoint {path} was refused as unsafe" in message
    assert re.search(r"unsupported GLOBAL \S+\.system whose module \S+ is blocked", message)
    assert "weights_only" not in message and "Weights only load failed" not in message
    assert "do not load or convert this file" in message and "convert-trusted" not in message
    assert main(["convert-trusted", str(path), str(tmp_path / "converted")]) == 2
    assert "refused as unsafe" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "converted").exists()


def test_damaged_and_incomplete_files(tmp_path):
    garbage = tmp_path / "garbage_best"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="garbage_best cannot be read.*damaged") as damaged:
        read_checkpoint(garbage)
    assert "weights_only" not in str(damaged.value)
    not_pickle = tmp_path / "pickle_best"
    not_pickle.write_bytes(pickle.dumps({"state_dict": 1}, protocol=2) + b"junk")
    with pytest.raises(CheckpointError, match="pickle_best"):
        read_checkpoint(not_pickle)
    # a released file's name with another size: incomplete, with the command that fetches it
    short = tmp_path / "final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0_23"
    torch.save({"state_dict": {"w": torch.ones(1)}}, short)
    with pytest.raises(CheckpointError, match=rf"is {short.stat().st_size} bytes, the released file is 266910615.*"
                                              rf"download_weights\.sh {tmp_path}"):
        read_checkpoint(short)
