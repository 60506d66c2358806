"""Configs (unknown keys rejected), schedules, ImageNet initialisation and the one checkpoint loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.tools.config import ConfigError, load_config
from training.tools.schedulers import create_optimizer, create_scheduler, lr_factor

REPO = Path(__file__).resolve().parents[2]
@pytest.mark.parametrize("name", ["b7.json", "b5.json", "demo_cpu.json"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.encoder.startswith("tf_efficientnet_")
    if name == "b7.json":  # the winner's settings
        assert (config.size, config.batch_size, config.epochs, config.batches_per_epoch) == (380, 12, 40, 2500)
        assert config.optimizer.as_dict() == {"type": "SGD", "lr": 0.01, "momentum": 0.9, "nesterov": True,
                                       "weight_decay": 1e-4}
        assert config.schedule.type == "poly" and config.grad_clip == 1.0


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
    assert load_config(None, ["optimizer.lr=0.5", "size=64"]).optimizer.lr == 0.5


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
    assert fixed.amp == "bf16" and fixed.optimizer.lr == 0.1
    # values users already write keep working: ints for floats, null where allowed, the old 'none'
    ok = load_config(None, ["dropout=0", "grad_clip=null", "pretrained=null", "amp=none", "keep_checkpoints=null"])
    assert ok.dropout == 0 and ok.grad_clip is None and ok.amp == "none"


def test_the_config_is_frozen_typed_and_round_trips_through_the_stored_dict():
    import dataclasses

    from training.tools.config import OptimizerConfig, TrainConfig

    config = load_config(REPO / "configs" / "demo_cpu.json", ["optimizer.lr=0.5"])
    assert isinstance(config, TrainConfig) and isinstance(config.optimizer, OptimizerConfig)
    assert config.optimizer.lr == 0.5 and config.encoder == "tf_efficientnet_lite0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 64  # type: ignore[misc]
    stored = config.as_dict()  # what checkpoints and <run>_args.json hold
    assert stored["optimizer"]["lr"] == 0.5 and list(stored)[:3] == ["family", "network", "encoder"]
    assert TrainConfig.from_dict(stored) == config
    assert load_config(None, base=stored) == config  # resuming from a checkpoint's config
    # a config built in code is checked like one read from a file
    with pytest.raises(ConfigError, match=r"config: size must be a positive integer, got 0"):
        dataclasses.replace(config, size=0)
    with pytest.raises(ConfigError, match=r"config: family 'nope' is not a model family; known: classifier2d"):
        dataclasses.replace(config, family="nope")
    with pytest.raises(ConfigError, match=r"config: type 'sgd' is not one of"):
        OptimizerConfig(type="sgd")
