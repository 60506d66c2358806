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

from core.devices import PRECISION_CHOICES
from core.files import path_problem
from models.registry import DEFAULT_FAMILY, MODEL_FAMILIES
from training.datasets.classifier_dataset import FAKE_SOURCES

# Every key a config may hold, with its default (the DFDC winner's B7 settings).
DEFAULTS: dict[str, Any] = {
    "family": DEFAULT_FAMILY,  # the model family (models.registry): what "encoder", "size"... build
    "network": "DeepFakeClassifier",  # names the run's files (<network>_<encoder>_<seed>)
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
    "fakes": "real",  # training fakes: "real" (the data's fake videos), "self_blended" (SBI, from reals only), "both"
    "workers": 6,
    "amp": "auto",  # auto (bf16 where supported, else fp16 on GPU; fp32 on CPU), bf16, fp16, fp32 (= none)
    "channels_last": False,
    "val_every": 1,  # epochs
    "tensorboard_images": 8,
    "keep_checkpoints": 3,  # newest <name>_<epoch> files kept (null: all); _best and _last always stay
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
AMP_MODES = PRECISION_CHOICES  # the vocabulary prediction's --precision uses too

# What a value may be beyond the type of its default (bool, int, float, text, object).
NULLABLE = {"pretrained", "grad_clip", "keep_checkpoints"}
CHOICES: dict[str, tuple[str, ...]] = {"amp": AMP_MODES, "optimizer.type": OPTIMIZERS, "schedule.type": SCHEDULES,
                                       "fakes": FAKE_SOURCES}
# key -> (lowest allowed, highest, whether the highest is allowed); None: unbounded
RANGES: dict[str, tuple[float, float | None, bool]] = {
    "size": (1, None, True), "batch_size": (1, None, True), "epochs": (1, None, True),
    "batches_per_epoch": (1, None, True), "val_every": (1, None, True), "padding_part": (1, None, True),
    "workers": (0, None, True), "keep_checkpoints": (0, None, True), "tensorboard_images": (0, None, True),
    "label_smoothing": (0, 0.5, False), "dropout": (0, 1, False), "drop_path_rate": (0, 1, False),
    "grad_clip": (0, None, True), "optimizer.lr": (0, None, True), "optimizer.momentum": (0, 1, True),
    "optimizer.weight_decay": (0, None, True), "schedule.max_iter": (1, None, True),
    "schedule.power": (0, None, True), "schedule.warmup_steps": (0, None, True), "schedule.min_lr": (0, None, True),
}


class ConfigError(Exception):
    """A config file or override is invalid; the message names the file, the key and the fix."""


def _merge(base: dict, update: dict, source: str, prefix: str = "", origins: dict[str, str] | None = None) -> dict:
    """``update`` over ``base`` (unknown keys are errors); ``origins`` records which source set each value."""
    origins = {} if origins is None else origins
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
            merged[key] = _merge(base[key], value, source, f"{full}.", origins)
        else:
            merged[key] = value
            origins[full] = source
    return merged


def _check_all(config: dict, defaults: dict, origins: dict[str, str], prefix: str = "") -> None:
    for key, value in config.items():
        if isinstance(defaults[key], dict):
            _check_all(value, defaults[key], origins, f"{prefix}{key}.")
        else:
            _check_value(f"{prefix}{key}", value, defaults[key], origins.get(f"{prefix}{key}", "defaults"))


def _check_value(key: str, value: Any, default: Any, source: str) -> None:
    """Type (that of the key's default), allowed choices and range of one value; the message names the
    source (file or override) and the key."""
    def fail(expected: str):
        raise ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if value is None:
        if key in NULLABLE or default is None:
            return
        fail("set (null is not allowed here)")
    if default is None:
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            fail("true or false")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            fail("a positive integer" if RANGES.get(key, (0,))[0] == 1 else "an integer")
    elif isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            fail("a number")
    elif isinstance(default, str) and not isinstance(value, str):
        fail("text (a JSON string)")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{source}: {key} {value!r} is not one of {CHOICES[key]}")
    if key in RANGES:
        low, high, high_included = RANGES[key]
        if value < low or (high is not None and (value > high or (value == high and not high_included))):
            if high is None:
                fail("a positive integer" if low == 1 and isinstance(default, int) else f">= {low:g}")
            fail(f"in [{low:g}, {high:g}{']' if high_included else ')'}")


def validate(config: dict, source: str) -> dict:
    """Checks across keys (each value was checked on its own as it was merged)."""
    if config["family"] not in MODEL_FAMILIES:
        raise ConfigError(f"{source}: family {config['family']!r} is not a model family; known: "
                          f"{', '.join(MODEL_FAMILIES.names())}")
    try:  # what the family makes of the config's model keys (size...), before any work
        MODEL_FAMILIES.get(config["family"]).input_spec(config)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return config


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None,
                base: dict | None = None) -> dict:
    """Defaults <- ``base`` (a saved config) <- JSON file <- ``key.sub=value`` overrides (values
    parsed as JSON, else strings)."""
    config = copy.deepcopy(DEFAULTS)
    source = "defaults"
    origins: dict[str, str] = {}  # the values are checked once all layers are in, so a later one may fix an earlier
    if base is not None:
        source = "the checkpoint's config"
        config = _merge(config, base, source, origins=origins)
    if path is not None:
        path = Path(path)
        source = str(path)
        problem = path_problem(path, want="file")
        if problem:
            raise ConfigError(f"config {path} {problem}; pass one of the files in configs/")
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold a JSON object")
        config = _merge(config, data, source, origins=origins)
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
        config = _merge(config, nested, f"override {item!r}", origins=origins)
    _check_all(config, DEFAULTS, origins)
    return validate(config, source)
