"""The ``classifier2d`` model family: DeepFakeClassifier, a timm encoder's features -> global average
pool -> dropout -> one logit, on one face image at a time (the DFDC winner's network)."""

from __future__ import annotations

import torch
from torch import nn

from core.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from models.family import ModelConfig, ModelFamily

# Project encoder names -> timm model names. The winner's names are timm's deprecated aliases;
# the state-dict keys are the same, so the winner's released checkpoints load unchanged.
ENCODERS: dict[str, str] = {
    "tf_efficientnet_b7_ns": "tf_efficientnet_b7.ns_jft_in1k",
    "tf_efficientnet_b6_ns": "tf_efficientnet_b6.ns_jft_in1k",
    "tf_efficientnet_b5_ns": "tf_efficientnet_b5.ns_jft_in1k",
    "tf_efficientnet_b4_ns": "tf_efficientnet_b4.ns_jft_in1k",
    "tf_efficientnet_b0_ns": "tf_efficientnet_b0.ns_jft_in1k",
    "tf_efficientnet_lite0": "tf_efficientnet_lite0.in1k",
    "tf_efficientnet_lite1": "tf_efficientnet_lite1.in1k",
    "tf_efficientnet_lite2": "tf_efficientnet_lite2.in1k",
}

# Input size (px) each encoder was trained at in the DFDC recipe; used when a checkpoint has no config.
DEFAULT_INPUT_SIZE: dict[str, int] = {
    "tf_efficientnet_b7_ns": 380,
    "tf_efficientnet_b6_ns": 380,
    "tf_efficientnet_b5_ns": 380,
    "tf_efficientnet_b4_ns": 380,
    "tf_efficientnet_b0_ns": 224,
    "tf_efficientnet_lite0": 224,
    "tf_efficientnet_lite1": 240,
    "tf_efficientnet_lite2": 260,
}

FALLBACK_INPUT_SIZE = 380  # for an encoder this table lacks, in a checkpoint with no config


def timm_name(encoder: str) -> str:
    """The timm model name for a project encoder name (timm names are accepted as they are)."""
    return ENCODERS.get(encoder, encoder)


def create_encoder(encoder: str, drop_path_rate: float = 0.0) -> nn.Module:
    """A timm encoder without weights (ImageNet weights are loaded by ``models.pretrained``).

    The ImageNet head is dropped (``num_classes=0``): the classifier only uses ``forward_features``.
    """
    import timm

    name = timm_name(encoder)
    if not timm.is_model(name.split(".")[0]):
        known = ", ".join(sorted(ENCODERS))
        raise ValueError(f"unknown encoder {encoder!r}; use one of {known} or any timm model name")
    return timm.create_model(name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)


class DeepFakeClassifier(nn.Module):
    def __init__(self, encoder: str, dropout_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.encoder_name = encoder
        self.encoder = create_encoder(encoder, drop_path_rate=drop_path_rate)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(self.encoder.num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the encoder's last convolutional stage's feature map): what Grad-CAM needs."""
        features = self.encoder.forward_features(x)
        pooled = self.avg_pool(features).flatten(1)
        return self.fc(self.dropout(pooled)), features


# ---- the family entry (models.registry) -------------------------------------------------------------


def _encoder(config: ModelConfig) -> str:
    encoder = config.get("encoder")
    if not encoder:
        raise ValueError("a classifier2d config needs an 'encoder' (e.g. tf_efficientnet_b7_ns)")
    return str(encoder)


def build(config: ModelConfig) -> DeepFakeClassifier:
    return DeepFakeClassifier(_encoder(config), dropout_rate=config.get("dropout", 0.0),
                              drop_path_rate=config.get("drop_path_rate", 0.0))


def input_spec(config: ModelConfig) -> InputSpec:
    """The config's ``size`` (else the encoder's recipe size), isotropic resize + zero padding, ImageNet
    normalisation, one image per sample: what the recipe trained every encoder with."""
    size_px = config.get("size") or DEFAULT_INPUT_SIZE.get(config.get("encoder"), FALLBACK_INPUT_SIZE)
    return InputSpec(size_px=int(size_px), mean=IMAGENET_MEAN, std=IMAGENET_STD)


def init_weights(model: nn.Module, config: ModelConfig) -> str:
    """The encoder's ImageNet weights named by the config's ``pretrained`` (``models.pretrained``)."""
    # imported here: models.pretrained imports the checkpoint loader, which imports the registry (and so this module)
    from models.pretrained import load_pretrained

    return load_pretrained(model, config.get("pretrained"), _encoder(config))


FAMILY = ModelFamily(build, input_spec, init_weights,
                     "a timm image encoder, global average pooling, dropout, one logit per face image")
