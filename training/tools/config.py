"""Training configs: JSON files layered over the defaults below, unknown keys rejected.

A config names the model, the data settings and the optimisation; command-line overrides
(``--set optimizer.lr=0.001``) are applied on top and the resolved result is saved with the run.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

# Every key a config may hold, with its default (the DFDC winner's B7 settings).
DEFAULTS: dict[str, Any] = {
    "network": "DeepFakeClassifier",
    "encoder": "tf_efficientnet_b7_ns",
    "pretrained": "timm",
    "dropout": 0.0,
    "drop_path_rate": 0.2,
    "size": 380,
    "batch_size": 12,  # per GPU (per process)
    "epochs": 40,
    "batches_per_epoch": 2500,
    "label_smoothing": 0.01,
    "grad_clip": 1.0,
    "hardcore": True,
    "padding_part": 3,
    "augment": True,
    "workers": 6,
    "amp": "auto",  # auto (bf16 where supported, else fp16 on GPU; fp32 on CPU), bf16, fp16, none
    "channels_last": False,
    "val_every": 1,  # epochs
    "tensorboard_images": 8,
    "optimizer": {
        "type": "SGD",  # SGD, Adam, AdamW
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1e-4,
    },
    "schedule": {
        "type": "poly",  # poly, cosine, constant (all per step)
        "max_iter": 100500,  # poly: steps to reach lr 0 (the winner ran 40 x 2500 = 100000)
        "power": 0.9,
        "warmup_steps": 0,
        "min_lr": 0.0,
    },
}

OPTIMIZERS = ("SGD", "Adam", "AdamW")
SCHEDULES = ("poly", "cosine", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "none")


class ConfigError(Exception):
    """A config file or override is invalid; the message names the file, the key and the fix."""


def _merge(base: dict, update: dict, source: str, prefix: str = "") -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if key.startswith("_"):  # "_comment" and the like
            continue
        full = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(k for k in base))
            raise ConfigError(f"{source}: unknown key {full!r}; known keys{' under ' + prefix[:-1] if prefix else ''}: "
                              f"{known}. Fix the spelling or remove it")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full!r} must be an object like {json.dumps(base[key])}")
            merged[key] = _merge(base[key], value, source, f"{full}.")
        else:
            merged[key] = value
    return merged


def validate(config: dict, source: str) -> dict:
    def fail(message: str):
        raise ConfigError(f"{source}: {message}")

    if config["optimizer"]["type"] not in OPTIMIZERS:
        fail(f"optimizer.type {config['optimizer']['type']!r} is not one of {OPTIMIZERS}")
    if config["schedule"]["type"] not in SCHEDULES:
        fail(f"schedule.type {config['schedule']['type']!r} is not one of {SCHEDULES}")
    if config["amp"] not in AMP_MODES:
        fail(f"amp {config['amp']!r} is not one of {AMP_MODES}")
    for key in ("size", "batch_size", "epochs", "batches_per_epoch"):
        if not isinstance(config[key], int) or config[key] < 1:
            fail(f"{key} must be a positive integer, got {config[key]!r}")
    if not 0 <= float(config["label_smoothing"]) < 0.5:
        fail(f"label_smoothing must be in [0, 0.5), got {config['label_smoothing']!r}")
    return config


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None,
                base: dict | None = None) -> dict:
    """Defaults <- ``base`` (a saved config) <- JSON file <- ``key.sub=value`` overrides (values
    parsed as JSON, else strings)."""
    config = copy.deepcopy(DEFAULTS)
    source = "defaults"
    if base is not None:
        source = "the checkpoint's config"
        config = _merge(config, base, source)
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config {path} does not exist; pass one of the files in configs/")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold a JSON object")
        config = _merge(config, data, source)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optimizer.lr=0.001)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        nested: dict = value
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        config = _merge(config, nested, f"override {item!r}")
    return validate(config, source)
