"""DeepFakeClassifier: a timm encoder's features -> global average pool -> dropout -> one logit."""

from __future__ import annotations

import torch
from torch import nn

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

# ImageNet normalisation, as the recipe used for every encoder
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_batch(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 RGB ``(N, 3, H, W)`` -> float32 ``(x / 255 - mean) / std`` on ``images``' device, contiguous
    NCHW: the model input of training, validation and prediction (the winner's arithmetic, step by step)."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return ((images.float() / 255.0 - mean_t) / std_t).contiguous()


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
