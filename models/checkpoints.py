"""The one checkpoint loader, for this project's checkpoints and the DFDC winner's released ones.

Formats accepted:

* this project: ``{"state_dict", "config", "family", "input_spec", "epoch", "best_score", "optimizer",
  ...}`` (written by ``save_checkpoint``); the config names the encoder, ``family`` the model family
  (``models.registry``) and ``input_spec`` what the model takes (``core.input_spec.InputSpec``). Files
  written before families existed have neither: they are ``classifier2d``, with the spec their config
  gives;
* the winner's: ``{"state_dict": {"module.encoder...", "module.fc..."}, ...}`` with no config, a
  ``classifier2d``; the encoder is read from the file name
  (``final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0_23``) or given by the caller;
* a bare state dict (the same).

File names: a training run ``<name>`` (``run_name``) writes ``<name>_<epoch>``, ``<name>_last``,
``<name>_best`` and ``<name>_args.json`` into its weights folder; ``checkpoint_path`` builds those
names and ``parse_checkpoint_name`` reads them back (the predictor's checkpoint discovery, retention
and the overwrite check all go through them).

Loading is always strict: a checkpoint that does not fit the model is an error, never a partial load
(a non-strict load silently gives useless scores). The only keys dropped are the encoder's ImageNet
head (``encoder.classifier.*``), which the classifier never uses.

Files are read with ``torch.load(weights_only=True)``: tensors and plain Python values only, plus NumPy
number scalars (the winner's training script stored its best validation loss, ``bce_best``, as the
NumPy float scikit-learn's ``log_loss`` returns). Nothing in a file can run code when it is read. A file
that needs more is refused as unsafe, with the object it asks for and never torch's advice to load it with
``weights_only=False``; if its source is trusted, ``python -m models.checkpoints convert-trusted SRC
DST`` writes a copy that loads (``save_checkpoint`` only writes such files). A file that calls into a
module torch blocks outright (``os``, ``sys``) is never converted.
"""

from __future__ import annotations

import argparse
import errno
import os
import pickle
import re
import shutil
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.files import atomic_path
from core.input_spec import InputSpec
from models.classifier2d import ENCODERS
from models.registry import DEFAULT_FAMILY, MODEL_FAMILIES, family_name
from models.weights import DOWNLOAD_COMMAND, released_file

_UNUSED_PREFIXES = ("encoder.classifier.",)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")  # accepted after a name (downloaded files)
_CHECKPOINT_NAME = re.compile(r"^(?P<run>.+)_(?P<which>best|last|args\.json|\d+)(?P<suffix>"
                              + "|".join(re.escape(s) for s in CHECKPOINT_SUFFIXES) + r")?$")


class CheckpointError(Exception):
    """A checkpoint cannot be read or does not fit the model; the message says which and why."""


@dataclass
class LoadedModel:
    model: torch.nn.Module
    encoder: str
    input_spec: InputSpec  # what the model takes (the checkpoint's, else its family's for its config)
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    # the validation score the file was saved with (this project: "best_score", the validation log loss
    # of its best epoch; the winner's: "bce_best"); None when it records none
    validation_score: float | None = None
    family: str = DEFAULT_FAMILY
    # the temperature fitted on its validation fold ({"method": "temperature", "temperature": T, ...}, see
    # training/calibrate.py); None for files written before calibration existed and for the winner's
    calibration: dict[str, Any] | None = None

    @property
    def input_size(self) -> int:
        return self.input_spec.size_px


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


def encoder_from_file_name(path: str | os.PathLike) -> str | None:
    """``..._DeepFakeClassifier_tf_efficientnet_b7_ns_0_23`` -> ``tf_efficientnet_b7_ns``."""
    name = Path(path).name
    for encoder in sorted(ENCODERS, key=len, reverse=True):
        if re.search(rf"(^|_){re.escape(encoder)}(_|$|\.)", name):
            return encoder
    return None


def _numpy_scalar_globals() -> list:
    """What unpickling a NumPy number scalar needs, under NumPy 2's and NumPy 1's module names."""
    from numpy._core import multiarray

    dtype_classes = [getattr(np.dtypes, f"{kind}DType") for kind in
                     ("Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64",
                      "UInt8", "UInt16", "UInt32", "UInt64", "Bool")]
    return [multiarray.scalar, (multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtype_classes]


# What torch's weights-only unpickler says when a file asks for something it will not build: a class or
# function outside its allowlist ("Unsupported global: GLOBAL x was not an allowed global"), one from a
# blocked module such as os or subprocess ("unsupported GLOBAL posix.system whose module posix is
# blocked"), or a call, object or build step on such a thing. Each means: the file wants code run.
_UNSAFE_PATTERNS = (r"unsupported global", r"whose module \S+ is blocked", r"call reduce for unrecognized",
                    r"can only create new object", r"can only build ")
# torch's own advice (load again with weights_only=False) is the one thing never to repeat to a user
_TORCH_ADVICE = re.compile(r"weights_only|Weights only load failed|add_safe_globals|safe_globals|"
                           r"documentation of torch\.load|pytorch\.org|file an issue", re.IGNORECASE)


def unpickler_reason(exc: BaseException) -> str:
    """The line of torch's error that says what was wrong with the file, without torch's advice."""
    lines = [line.strip().removeprefix("WeightsUnpickler error: ") for line in str(exc).splitlines()]
    reasons = [line for line in lines if line and not _TORCH_ADVICE.search(line)]
    if not reasons:  # the reason shares its line with the advice: keep the part before it
        reasons = [re.split(r"\. Please use|\. Re-running", line)[0] for line in lines
                   if re.search("|".join(_UNSAFE_PATTERNS), line, re.IGNORECASE)]
    return reasons[0] if reasons else type(exc).__name__


def is_unsafe_refusal(exc: BaseException) -> bool:
    """True when torch refused the file because it asks for code to run (not because it is damaged)."""
    return isinstance(exc, pickle.UnpicklingError) and any(
        re.search(pattern, str(exc), re.IGNORECASE) for pattern in _UNSAFE_PATTERNS)


def _refusal(path: Path, exc: pickle.UnpicklingError) -> str:
    reason = unpickler_reason(exc).split(" was not an allowed global")[0].rstrip(".")
    head = (f"checkpoint {path} was refused as unsafe and not loaded: it asks for Python objects beyond tensors "
            f"and plain values ({reason}), and rebuilding them would run code from the file.")
    if re.search(r"whose module \S+ is blocked", reason):  # os, sys: no checkpoint needs those
        return f"{head} No checkpoint needs that module: do not load or convert this file; delete it"
    return (f"{head} If you trust where it came from, convert it once: python -m models.checkpoints "
            f"convert-trusted {path} {path}.plain (then use {path}.plain)")


def load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load`` of a file in this project's terms (see the module docstring): weights_only, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with ./train.sh or pass the path "
                              f"of a downloaded checkpoint ({DOWNLOAD_COMMAND} fetches the winner's)")
    released = released_file(path.name)
    if released and released.size_bytes is not None and path.stat().st_size != released.size_bytes:
        raise CheckpointError(f"checkpoint {path} is {path.stat().st_size} bytes, the released file is "
                              f"{released.size_bytes}: incomplete or another file; run "
                              f"{DOWNLOAD_COMMAND} {path.parent} to fetch and verify it")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if is_unsafe_refusal(exc):  # a well-formed pickle asking for a class or function
            raise CheckpointError(_refusal(path, exc)) from exc
        raise CheckpointError(f"checkpoint {path} cannot be read (UnpicklingError: {unpickler_reason(exc)}); "
                              f"the file is damaged or not a PyTorch checkpoint") from exc
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {unpickler_reason(exc)}); "
                              f"the file is damaged or not a PyTorch checkpoint") from exc


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    data = load_weights_only(path)
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
        network = f"{type(target).__name__}({encoder})"
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if mismatched:
            k = mismatched[0]
            details.append(f"{len(mismatched)} with other shapes (e.g. {k}: checkpoint "
                           f"{tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)})")
        raise CheckpointError(f"checkpoint {source} does not fit {network}: "
                              f"{'; '.join(details)}. Check the encoder name (config 'encoder' or the "
                              f"--encoder option) matches the one the checkpoint was trained with")
    target.load_state_dict(state_dict, strict=True)


def checkpoint_family(data: dict[str, Any], path: str | os.PathLike) -> str:
    """The model family a checkpoint records (its own ``family``, else its config's, else the default);
    CheckpointError for one this version does not know."""
    name = data.get("family") or family_name(data.get("config") or {})
    if name not in MODEL_FAMILIES:
        raise CheckpointError(f"checkpoint {path} is a {name!r} model, a family this version does not know "
                              f"(known: {', '.join(MODEL_FAMILIES.names())}); use the version that trained it")
    return str(name)


def checkpoint_input_spec(data: dict[str, Any], config: dict[str, Any], family: str, path: str | os.PathLike) -> InputSpec:
    """The input spec the checkpoint stores, else the one its family gives for its config."""
    if data.get("input_spec") is None:
        return MODEL_FAMILIES.get(family).input_spec(config)
    try:
        return InputSpec.from_dict(data["input_spec"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} records an input spec this version cannot use ({exc})") from exc


def load_model(path: str | os.PathLike, encoder: str | None = None, device: str | torch.device = "cpu",
               input_size: int | None = None) -> LoadedModel:
    """Build the network a checkpoint describes (its family, through ``models.registry``), load its weights
    strictly and return it in eval mode with its input spec. ``encoder``: for a file whose config names
    none; ``input_size``: another input side than the recorded one."""
    data = read_checkpoint(path)
    family = checkpoint_family(data, path)
    config = data.get("config") or {}
    encoder = encoder or config.get("encoder") or encoder_from_file_name(path)
    if encoder is None:
        raise CheckpointError(f"checkpoint {path} does not say which encoder it uses (no config, and the file "
                              f"name names none of {sorted(ENCODERS)}); pass the encoder explicitly")
    model_config = {**config, "encoder": encoder}
    spec = checkpoint_input_spec(data, model_config, family, path)
    if input_size:
        spec = spec.replace(size_px=int(input_size))
    model = MODEL_FAMILIES.get(family).build(model_config)
    load_state_dict_strict(model, data["state_dict"], str(path))
    model.eval().to(device)
    score = data.get("best_score", data.get("bce_best"))
    score = float(score) if isinstance(score, (int, float, np.floating)) and np.isfinite(float(score)) else None
    return LoadedModel(model, encoder, spec, Path(path), config, data.get("epoch"), score, family,
                       checked_calibration(data.get("calibration"), path))


def checked_calibration(calibration: Any, path: str | os.PathLike) -> dict[str, Any] | None:
    """A checkpoint's ``calibration`` entry when it is one this project writes (a positive, finite
    temperature), None when the file has none; CheckpointError otherwise."""
    if calibration is None:
        return None
    temperature = calibration.get("temperature") if isinstance(calibration, dict) else None
    if (not isinstance(calibration, dict) or calibration.get("method") != "temperature"
            or not isinstance(temperature, (int, float)) or not (0 < temperature < float("inf"))):
        raise CheckpointError(f"checkpoint {path} holds a calibration this version cannot use ({calibration!r}); "
                              f"fit it again with python -m training.calibrate {path} --data-dir DATA_ROOT")
    return dict(calibration)


def to_plain(value: Any, trusted_conversion: bool = False) -> Any:
    """``value`` in types ``torch.load(weights_only=True)`` reads: tensors, containers, str/int/float/bool/None.

    NumPy values become Python numbers or tensors, paths strings. Anything else is a TypeError (a caller
    saving an object by mistake), unless ``trusted_conversion``: then dataclass-like objects become
    dicts of their attributes and the rest their ``repr``.
    """
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor, torch.Size)):
        return value
    if isinstance(value, dict):  # OrderedDict kept (state dicts), other dict kinds become dicts
        kind = OrderedDict if isinstance(value, OrderedDict) else dict
        return kind((to_plain(k, trusted_conversion), to_plain(v, trusted_conversion)) for k, v in value.items())
    for kind in (list, tuple, set):  # subclasses (named tuples...) become the plain kind
        if isinstance(value, kind):
            return kind(to_plain(v, trusted_conversion) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if not trusted_conversion:
        raise TypeError(f"{type(value).__name__} cannot go into a checkpoint that loads with weights_only; "
                        f"store it as plain values")
    if hasattr(value, "__dict__"):
        return to_plain(dict(vars(value)), trusted_conversion)
    return repr(value)


class CheckpointSaveError(CheckpointError):
    """A checkpoint could not be written (a full disk, say); the checkpoints saved before are intact."""


# errnos of a write that failed for want of room: a full file system, a user quota
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def save_error(path: str | os.PathLike, exc: OSError, needed_bytes: int) -> CheckpointSaveError:
    """What to say when writing checkpoint ``path`` (about ``needed_bytes``) failed with ``exc``."""
    path = Path(path)
    if exc.errno not in NO_SPACE_ERRNOS:
        return CheckpointSaveError(f"cannot save checkpoint {path} ({exc.strerror or exc}); the checkpoints "
                                   f"saved before are intact")
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    return CheckpointSaveError(
        f"cannot save checkpoint {path}: no space left on the disk of {path.parent} ({free}, this file needs "
        f"about {needed_bytes / 2**20:.0f} MB); free space there, keep fewer epoch files (--set "
        f"keep_checkpoints=1) or train into a disk with room (WEIGHTS_DIR / --output-dir), then continue with "
        f"train.sh --resume; the checkpoints saved before are intact")


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: dict[str, Any],
                    **extra: Any) -> None:
    """Atomically write this project's checkpoint format (weights without the DDP prefix, the config, the
    model family and its input spec as the config gives them), in plain types only, so that
    ``read_checkpoint`` loads it with weights_only. A failed write (a full disk) raises
    CheckpointSaveError and leaves no partial file."""
    target = model.module if hasattr(model, "module") else model
    family = family_name(config)
    spec = MODEL_FAMILIES.get(family).input_spec(config)
    payload = to_plain({"state_dict": target.state_dict(), "config": config, "family": family,
                        "input_spec": spec.to_dict(), **extra})
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            # through a Python file: a full disk is then an OSError(ENOSPC), where torch's own writer
            # of a path reports only "unexpected pos"
            torch.save(payload, handle)
    except OSError as exc:
        raise save_error(path, exc, _tensor_bytes(payload)) from exc


def convert_trusted(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Rewrite a checkpoint whose source the user trusts into one that loads with weights_only.

    The one place that unpickles a file fully, and only on the user's explicit command; never a file that
    calls into a module torch blocks outright (os, sys: no checkpoint needs them).
    """
    try:
        torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever else is wrong, the full load below reports it
        if isinstance(exc, pickle.UnpicklingError) and re.search(r"whose module \S+ is blocked", str(exc)):
            raise CheckpointError(_refusal(Path(source), exc)) from exc
    data = torch.load(source, map_location="cpu", weights_only=False)
    with atomic_path(destination) as tmp:
        torch.save(to_plain(data, trusted_conversion=True), tmp)
    load_weights_only(destination)  # the copy must now load the safe way


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.checkpoints")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-trusted", help="copy a checkpoint you trust into plain types "
                                  "(it is fully unpickled once: only for files from a trusted source)")
    convert.add_argument("source")
    convert.add_argument("destination")
    args = parser.parse_args(argv)
    if Path(args.destination).exists():
        print(f"error: {args.destination} exists; give a new file name", file=sys.stderr)
        return 2
    try:
        convert_trusted(args.source, args.destination)
    except (OSError, CheckpointError, pickle.UnpicklingError, RuntimeError) as exc:
        print(f"error: {args.source} could not be converted ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    print(f"wrote {args.destination}: loads with weights_only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
