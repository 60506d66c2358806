"""The ``video_resnet`` model family: torchvision's 3D ResNets for video (Tran et al., "A closer look at
spatiotemporal convolutions for action recognition", CVPR 2018) with one logit per clip.

``encoder`` picks the network: ``r3d_18`` (3x3x3 convolutions throughout), ``mc3_18`` (3D in the first
layers, 2D in the later ones) or ``r2plus1d_18`` (each 3D convolution split into a spatial and a
temporal one). The Kinetics-400 classifier is replaced by dropout and one logit; everything before it
is torchvision's network, so its Kinetics-400 weights (``"pretrained": "kinetics400"``, fetched by
``./download_weights.sh --kinetics ENCODER``) load unchanged. Input: clips of ``clip_frames`` frames
(16, as trained on Kinetics), ``size`` px (112, the Kinetics crop), Kinetics mean/std.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from core.input_spec import KINETICS_MEAN, KINETICS_STD, InputSpec
from models.family import ModelConfig, ModelFamily

ARCHITECTURES = ("r3d_18", "mc3_18", "r2plus1d_18")
DEFAULT_SIZE_PX = 112  # the crop torchvision's Kinetics-400 weights were trained and evaluated at
DEFAULT_CLIP_FRAMES = 16  # their clip length
KINETICS_PRETRAINED = "kinetics400"
_HEAD_PREFIX = "fc."


class VideoResNetClassifier(nn.Module):
    """torchvision's VideoResNet (``backbone``, its classifier removed) -> dropout -> one logit."""

    def __init__(self, architecture: str, dropout_rate: float = 0.0):
        super().__init__()
        from torchvision.models import video

        self.encoder_name = architecture
        self.backbone = getattr(video, architecture)(weights=None)
        features = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(features, 1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, H, W)`` normalised clips -> ``(N, 1)`` logits."""
        return self.fc(self.dropout(self.backbone(clips)))


def architecture(config: ModelConfig) -> str:
    encoder = config.get("encoder")
    if encoder not in ARCHITECTURES:
        raise ValueError(f"a video_resnet config needs an 'encoder' out of {', '.join(ARCHITECTURES)}, got {encoder!r}")
    return str(encoder)


def build(config: ModelConfig) -> VideoResNetClassifier:
    return VideoResNetClassifier(architecture(config), dropout_rate=config.get("dropout", 0.0))


def input_spec(config: ModelConfig) -> InputSpec:
    return InputSpec(size_px=int(config.get("size") or DEFAULT_SIZE_PX), mean=KINETICS_MEAN, std=KINETICS_STD,
                     frames_per_clip=int(config.get("clip_frames") or DEFAULT_CLIP_FRAMES),
                     frame_step=int(config.get("clip_frame_step") or 1), layout="NCTHW")


def kinetics_state_dict(arch: str, weights_dir: str | os.PathLike | None = None) -> tuple[dict, str]:
    """The Kinetics-400 weights download_weights.sh fetched for ``arch``, verified (size and sha256)."""
    from models.checkpoints import read_checkpoint
    from models.weights import DOWNLOAD_COMMAND, verify_kinetics_weights

    check = verify_kinetics_weights(arch, weights_dir)
    if not check.ok:
        fix = "fetch it" if check.problem == "missing" else "fetch a good copy (the bad one is never used)"
        raise ValueError(f"Kinetics-400 weights {check.path} {check.problem}; run `{DOWNLOAD_COMMAND} --kinetics "
                         f"{arch}` to {fix} (offline, it says where to copy a file fetched elsewhere), or set "
                         f"\"pretrained\" to null for random initialisation")
    return read_checkpoint(check.path)["state_dict"], f"{check.path} (verified)"


def init_weights(model: nn.Module, config: ModelConfig) -> str:
    """``pretrained``: null (random), ``"kinetics400"`` (torchvision's weights from the weights folder), or
    the path of a file with torchvision's key names. The Kinetics classifier (``fc``) is never loaded."""
    pretrained = config.get("pretrained")
    if pretrained is None or str(pretrained).lower() in ("", "none", "null", "false"):
        return "random initialisation"
    arch = architecture(config)
    if pretrained == KINETICS_PRETRAINED:
        state, source = kinetics_state_dict(arch)
    elif Path(str(pretrained)).is_file():
        from models.checkpoints import read_checkpoint

        state, source = read_checkpoint(pretrained)["state_dict"], str(pretrained)
    else:
        raise ValueError(f"\"pretrained\": {pretrained!r} means nothing to a video_resnet; use \"{KINETICS_PRETRAINED}\", "
                         f"the path of a weights file with torchvision's {arch} key names, or null")
    backbone = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIX)}
    target = model.module if hasattr(model, "module") else model
    target.backbone.load_state_dict(backbone, strict=True)
    return source


FAMILY = ModelFamily(build, input_spec, init_weights,
                     "torchvision's r3d_18 / mc3_18 / r2plus1d_18 on face clips, one logit per clip")
