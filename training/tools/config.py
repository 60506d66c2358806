"""Training configs: frozen, typed :class:`TrainConfig` objects, read from JSON layered over the defaults.

Every key a config may hold is one ``option(...)`` field below (the project's one config style, shared
with the predictor's options through ``core.options``): its default (the DFDC winner's B7 settings), its
help and the values it accepts. Layers, each over the one before (like timm's config file under its
flags): the defaults, a checkpoint's stored config (resuming), a JSON file, then command-line overrides
(``--set optimizer.lr=0.001``). Unknown keys and bad values are errors naming the file or override and
the key; the resolved config is saved with the run (``TrainConfig.as_dict``, the dict checkpoints store).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.devices import PRECISION_CHOICES
from core.files import path_problem
from core.options import field_types, option, value_problem
from models.registry import DEFAULT_FAMILY, MODEL_FAMILIES
from training.datasets.fake_sources import FAKE_SOURCES
from training.tools.schedulers import SCHEDULES

OPTIMIZERS = ("SGD", "Adam", "AdamW")
AMP_MODES = PRECISION_CHOICES  # the vocabulary prediction's --precision uses too


class ConfigError(Exception):
    """A config file or override is invalid; the message names the file, the key and the fix."""


def _check_all(config: dict, cls: type, origins: dict[str, str], prefix: str = "", source: str = "defaults") -> None:
    """Each value of ``config`` (a dict of ``cls``'s fields) against its field, in field order; the message
    names the layer that set the value."""
    types = field_types(cls)
    for spec in dataclasses.fields(cls):
        key, value = f"{prefix}{spec.name}", config[spec.name]
        if dataclasses.is_dataclass(types[spec.name].kind):
            _check_all(value, types[spec.name].kind, origins, f"{key}.", source)
            continue
        problem = value_problem(spec, types[spec.name], value)
        if problem:
            raise ConfigError(f"{origins.get(key, source)}: {key} {problem}")


class _ConfigBase:
    """What the config objects share: checked on construction, as plain dicts for files and checkpoints."""

    def __post_init__(self):
        _check_all(dataclasses.asdict(self), type(self), {}, source="config")

    def as_dict(self) -> dict[str, Any]:
        """Nested plain dict, keys in field order: what ``<run>_args.json`` and checkpoints store."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """The config of a complete, checked dict (``as_dict``'s inverse)."""
        types = field_types(cls)
        return cls(**{name: types[name].kind.from_dict(value) if dataclasses.is_dataclass(types[name].kind)
                      else value for name, value in values.items()})


@dataclass(frozen=True)
class OptimizerConfig(_ConfigBase):
    type: str = option("SGD", "optimizer", choices=OPTIMIZERS)
    lr: float = option(0.01, "base learning rate (per process batch)", minimum=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, maximum=1)
    nesterov: bool = option(True, "SGD with Nesterov momentum")
    weight_decay: float = option(1e-4, "L2 weight decay (decoupled for AdamW)", minimum=0)


@dataclass(frozen=True)
class ScheduleConfig(_ConfigBase):
    type: str = option("poly", "learning-rate schedule (training.tools.schedulers.SCHEDULES): poly, cosine, "
                       "constant, one_cycle, plateau", choices=SCHEDULES)
    max_iter: int = option(100500, "poly: steps to reach lr 0 (the winner ran 40 x 2500 = 100000)", minimum=1)
    power: float = option(0.9, "poly: exponent", minimum=0)
    warmup_steps: int = option(0, "linear warm-up steps before the schedule (poly, cosine, constant)", minimum=0)
    min_lr: float = option(0.0, "lowest learning rate (poly, cosine, plateau)", minimum=0)
    pct_start: float = option(0.3, "one_cycle: share of the steps rising to the optimizer's lr", minimum=0, maximum=1,
                              exclusive_maximum=True)
    div_factor: float = option(25.0, "one_cycle: the first lr is lr / div_factor", minimum=1)
    final_div_factor: float = option(1e4, "one_cycle: the last lr is lr / div_factor / final_div_factor", minimum=1)
    factor: float = option(0.5, "plateau: the lr is multiplied by this when the validation loss stops improving",
                           minimum=0, maximum=1, exclusive_maximum=True)
    patience: int = option(2, "plateau: validations without improvement before the lr is lowered", minimum=0)


@dataclass(frozen=True)
class TrainConfig(_ConfigBase):
    """One training run's settings (the model, the data, the optimisation). Build one with
    :func:`load_config`; it cannot change once built."""

    family: str = option(DEFAULT_FAMILY, "model family (models.registry.MODEL_FAMILIES): what encoder, size... "
                         "build")
    network: str = option("DeepFakeClassifier", "model name; with the encoder and seed it names the run's files")
    encoder: str = option("tf_efficientnet_b7_ns", "timm encoder")
    pretrained: str | None = option(
        "timm", "encoder initialisation: timm (ImageNet weights), a weights file, lite0-package, lite1-package, "
        "lite2-package, or null (random)")
    dropout: float = option(0.0, "dropout before the classifier head", minimum=0, maximum=1, exclusive_maximum=True)
    drop_path_rate: float = option(0.2, "stochastic depth of the encoder", minimum=0, maximum=1,
                                   exclusive_maximum=True)
    size: int = option(380, "input size in pixels (square)", minimum=1)
    batch_size: int = option(12, "samples per step per GPU (per process)", minimum=1)
    epochs: int = option(40, "epochs of the schedule", minimum=1)
    batches_per_epoch: int = option(2500, "steps per epoch at most", minimum=1)
    label_smoothing: float = option(0.01, "labels become s and 1 - s", minimum=0, maximum=0.5,
                                    exclusive_maximum=True)
    grad_clip: float | None = option(1.0, "gradient norm clipping (null: none)", minimum=0)
    hardcore: bool = option(True, "landmark / hull / bit-mask cutouts before the augmentations")
    padding_part: int = option(3, "keep 1/N of the face size as context on each side (3 = the whole crop)",
                               minimum=1)
    augment: bool = option(True, "the augmentation pipeline (off: the crops as they are)")
    clip_frames: int = option(16, "clip families (video_resnet, inflated3d): frames per training chunk", minimum=1)
    clip_frame_step: int = option(1, "clip families: clip frames between a chunk's frames (2: every other)",
                                  minimum=1)
    temporal_kernel: int = option(3, "inflated3d: frames each inflated kernel spans", minimum=1)
    init_from: str | None = option(
        None, "inflated3d: a trained 2D detector checkpoint of this project (family classifier2d, the same "
        "encoder) to inflate as the starting weights, head included, instead of pretrained's ImageNet encoder; "
        "it must not have seen the validation or test videos (null: pretrained)")
    clip_crop: float = option(0.875, "clip families: the crop's share of the clip's side (random in training, "
                              "centred in validation; 112 of 128 px)", minimum=0.1, maximum=1)
    clip_size: int | None = option(
        None, "clip families: the side of the training clips (the clips stage's --clip-size); training records the "
        "clips' own side here (from their clips.json) so that prediction cuts its chunks at it; a value given must "
        "match the clips", minimum=16)
    cutmix: float = option(0.0, "clip families: share of a batch's clips that get a cuboid of another (3D cutmix)",
                           minimum=0, maximum=1)
    cutmix_alpha: float = option(1.0, "3D cutmix: Beta(alpha, alpha) of the share each mixed clip keeps",
                                 minimum=0.01)
    fakes: str = option("real", "training fakes (training.datasets.fake_sources): real (the data's fake videos), "
                        "self_blended (SBI, from reals only), both", choices=FAKE_SOURCES)
    train_videos: int | None = option(
        None, "train on a subset of about this many of the training folds' videos, whole identity groups at a "
        "time, drawn from the seed (a learning curve); null: all", minimum=1)
    workers: int = option(6, "data loader processes per GPU (per process)", minimum=0)
    amp: str = option("auto", "mixed precision: auto (bf16 where supported, else fp16 on GPU; fp32 on CPU), "
                      "bf16, fp16, fp32 (none = fp32)", choices=AMP_MODES)
    channels_last: bool = option(False, "model and batches in channels-last memory format")
    val_every: int = option(1, "validate every N epochs (and after the last)", minimum=1)
    tensorboard_images: int = option(8, "augmented samples shown in TensorBoard each epoch", minimum=0)
    keep_checkpoints: int | None = option(
        3, "newest <name>_<epoch> files kept (null: all); _best and _last always stay", minimum=0)
    optimizer: OptimizerConfig = option(OptimizerConfig(), "optimizer settings")
    schedule: ScheduleConfig = option(ScheduleConfig(), "learning-rate schedule settings")

    def __post_init__(self):
        super().__post_init__()
        _check_model(self.as_dict(), "config")


def _check_model(config: dict, source: str) -> None:
    """The family exists and takes the config's model keys (size...): checked before any work."""
    if config["family"] not in MODEL_FAMILIES:
        raise ConfigError(f"{source}: family {config['family']!r} is not a model family; known: "
                          f"{', '.join(MODEL_FAMILIES.names())}")
    try:
        MODEL_FAMILIES.get(config["family"]).input_spec(config)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


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


def _read_file(path: Path) -> dict:
    problem = path_problem(path, want="file")
    if problem:
        raise ConfigError(f"config {path} {problem}; pass one of the files in configs/")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a JSON object")
    return data


def _override(item: str) -> dict:
    """``key.sub=value`` as a nested dict (the value parsed as JSON, else taken as a string)."""
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
    return nested


def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] | None = None,
                base: dict | None = None) -> TrainConfig:
    """Defaults <- ``base`` (a saved config) <- JSON file <- ``key.sub=value`` overrides (values
    parsed as JSON, else strings)."""
    config = TrainConfig().as_dict()
    source = "defaults"  # the last config layer, named by the checks across keys
    origins: dict[str, str] = {}  # the values are checked once all layers are in, so a later one may fix an earlier
    if base is not None:
        source = "the checkpoint's config"
        config = _merge(config, base, source, origins=origins)
    if path is not None:
        source = str(path)
        config = _merge(config, _read_file(Path(path)), source, origins=origins)
    for item in overrides or []:
        config = _merge(config, _override(item), f"override {item!r}", origins=origins)
    _check_all(config, TrainConfig, origins)
    _check_model(config, origins.get("family", source))
    return TrainConfig.from_dict(config)
