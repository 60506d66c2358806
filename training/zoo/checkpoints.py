"""The one checkpoint loader, for this project's checkpoints and the DFDC winner's released ones.

Formats accepted:

* this project: ``{"state_dict", "config", "epoch", "best_score", "optimizer", ...}`` (written by
  ``save_checkpoint``); the config names the encoder and input size;
* the winner's: ``{"state_dict": {"module.encoder...", "module.fc..."}, ...}`` with no config; the
  encoder is read from the file name (``final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0_23``)
  or given by the caller;
* a bare state dict.

File names: a training run ``<name>`` (``run_name``) writes ``<name>_<epoch>``, ``<name>_last``,
``<name>_best`` and ``<name>_args.json`` into its weights folder; ``checkpoint_path`` builds those
names and ``parse_checkpoint_name`` reads them back (the predictor's checkpoint discovery, retention
and the overwrite check all go through them).

Loading is always strict: a checkpoint that does not fit the model is an error, never a partial load
(a non-strict load silently gives useless scores). The only keys dropped are the encoder's ImageNet
head (``encoder.classifier.*``), which the classifier never uses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from preprocessing.layout import atomic_path
from training.zoo.classifiers import DEFAULT_INPUT_SIZE, ENCODERS, DeepFakeClassifier

_UNUSED_PREFIXES = ("encoder.classifier.",)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")  # accepted after a name (downloaded files)
_CHECKPOINT_NAME = re.compile(r"^(?P<run>.+)_(?P<which>best|last|args\.json|\d+)(?P<suffix>"
                              + "|".join(re.escape(s) for s in CHECKPOINT_SUFFIXES) + r")?$")
REPO_ROOT = Path(__file__).resolve().parents[2]


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not fit the model; the message says which and why."""


@dataclass
class LoadedModel:
    model: DeepFakeClassifier
    encoder: str
    input_size: int
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None


@dataclass(frozen=True)
class CheckpointName:
    """What a file name in a weights folder says: the run and which file of it (``"best"``,
    ``"last"``, ``"args"`` or an epoch number)."""

    run: str
    which: str | int


def run_name(config: dict[str, Any], seed: int, prefix: str = "") -> str:
    """``<prefix><network>_<encoder>_<seed>``: the name every file of a training run starts with."""
    return f"{prefix}{config['network']}_{config['encoder']}_{seed}"


def checkpoint_path(weights_dir: str | os.PathLike, run: str, which: str | int) -> Path:
    """``weights_dir/<run>_<epoch>``, ``_best``, ``_last`` or ``_args.json`` (``which="args"``)."""
    if isinstance(which, int):
        return Path(weights_dir) / f"{run}_{which}"
    if which not in ("best", "last", "args"):
        raise ValueError(f"unknown checkpoint kind {which!r}; use best, last, args or an epoch number")
    return Path(weights_dir) / (f"{run}_args.json" if which == "args" else f"{run}_{which}")


def parse_checkpoint_name(file_name: str) -> CheckpointName | None:
    """The inverse of ``checkpoint_path`` on a file name (``_best``/``_last`` may carry a suffix such as
    ``.pth``); None for any other file (temp files, TensorBoard events, notes)."""
    if file_name.startswith(".") or "tfevents" in file_name:
        return None
    match = _CHECKPOINT_NAME.match(file_name)
    if not match:
        return None
    which = match.group("which")
    if which == "args.json":
        return None if match.group("suffix") else CheckpointName(match.group("run"), "args")
    return CheckpointName(match.group("run"), int(which) if which.isdigit() else which)


def run_files(weights_dir: str | os.PathLike, run: str) -> list[Path]:
    """Every file of run ``run`` in ``weights_dir`` (epochs, best, last, args), sorted; never another run's."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(p for p in weights_dir.iterdir()
                  if p.is_file() and (parsed := parse_checkpoint_name(p.name)) is not None and parsed.run == run
                  and p.name == checkpoint_path(weights_dir, run, parsed.which).name)


def default_weights_dir() -> Path:
    """Where ``train.sh`` writes and ``predict_submission.sh`` reads checkpoints: ``$WEIGHTS_DIR``
    (``$OUTPUT_DIR``, its older name for training, also works; relative to the working folder), else
    ``weights/`` in the repository, wherever the commands are run from."""
    chosen = os.environ.get("WEIGHTS_DIR") or os.environ.get("OUTPUT_DIR")
    return Path(chosen).absolute() if chosen else REPO_ROOT / "weights"


def encoder_from_file_name(path: str | os.PathLike) -> str | None:
    """``..._DeepFakeClassifier_tf_efficientnet_b7_ns_0_23`` -> ``tf_efficientnet_b7_ns``."""
    name = Path(path).name
    for encoder in sorted(ENCODERS, key=len, reverse=True):
        if re.search(rf"(^|_){re.escape(encoder)}(_|$|\.)", name):
            return encoder
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with ./train.sh or pass the path "
                              f"of a downloaded checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                              f"the file is damaged or not a PyTorch checkpoint") from exc
    if isinstance(data, dict) and "state_dict" in data:
        return data
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"state_dict": data}
    raise CheckpointError(f"checkpoint {path} holds no state_dict; expected a dict with 'state_dict' "
                          f"(this project's and the DFDC winner's format) or a bare state dict")


def clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP's ``module.`` prefix and drop the unused ImageNet head."""
    cleaned = {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith(_UNUSED_PREFIXES):
            continue
        cleaned[key] = value
    return cleaned


def load_state_dict_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    state_dict = clean_state_dict(state_dict)
    target = model.module if hasattr(model, "module") else model
    expected = target.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or mismatched:
        encoder = getattr(target, "encoder_name", "?")
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if mismatched:
            k = mismatched[0]
            details.append(f"{len(mismatched)} with other shapes (e.g. {k}: checkpoint "
                           f"{tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)})")
        raise CheckpointError(f"checkpoint {source} does not fit DeepFakeClassifier({encoder}): "
                              f"{'; '.join(details)}. Check the encoder name (config 'encoder' or the "
                              f"--encoder option) matches the one the checkpoint was trained with")
    target.load_state_dict(state_dict, strict=True)


def load_model(path: str | os.PathLike, encoder: str | None = None, device: str | torch.device = "cpu",
               input_size: int | None = None) -> LoadedModel:
    """Build the classifier a checkpoint describes and load its weights strictly (eval mode)."""
    data = read_checkpoint(path)
    config = data.get("config") or {}
    encoder = encoder or config.get("encoder") or encoder_from_file_name(path)
    if encoder is None:
        raise CheckpointError(f"checkpoint {path} does not say which encoder it uses (no config, and the file "
                              f"name names none of {sorted(ENCODERS)}); pass the encoder explicitly")
    model = DeepFakeClassifier(encoder)
    load_state_dict_strict(model, data["state_dict"], str(path))
    model.eval().to(device)
    size = input_size or config.get("size") or DEFAULT_INPUT_SIZE.get(encoder, 380)
    return LoadedModel(model, encoder, int(size), Path(path), config, data.get("epoch"))


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: dict[str, Any],
                    **extra: Any) -> None:
    """Atomically write this project's checkpoint format (weights without the DDP prefix)."""
    target = model.module if hasattr(model, "module") else model
    payload = {"state_dict": target.state_dict(), "config": config, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
