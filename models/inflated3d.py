"""The ``inflated3d`` model family: an I3D-style network (Carreira & Zisserman, "Quo vadis, action
recognition?", CVPR 2017) inflated from a 2D timm ImageNet encoder, one logit per clip.

Inflation turns every layer of the 2D encoder into its 3D form with the same weights:

* ``Conv2d`` (timm's ``Conv2dSame`` included) -> a 3D convolution whose kernel is the 2D kernel repeated
  over ``temporal_kernel`` frames and divided by that number (1x1 convolutions stay 1x1x1); temporal
  stride 1, spatial stride, dilation, groups and padding as in 2D (the dynamic TF "same" padding of
  ``tf_`` encoders computed per input as timm does);
* ``BatchNorm2d`` (timm's ``BatchNormAct2d`` with its activation) -> ``BatchNorm3d`` with the same
  statistics;
* the classifier's global average pooling over (H, W) -> over (T, H, W).

Temporal padding replicates the first and last frames (not zeros): then on a clip of one repeated frame
every layer sees, at every time step, exactly what the 2D layer saw, and the inflated network's logit
equals the 2D network's on that frame (the I3D property; tests/models/test_video_families.py checks it to
1e-5). Zero padding would break it at the clip's edges.

Inflation is written for the layer types of timm's EfficientNet-Lite encoders (no squeeze-excitation,
whose 2D-only pooling would need its own 3D form); any other layer type is refused by name. With
``"pretrained": "lite0-package"`` (``lite1``/``lite2``) the ImageNet weights come from the offline pip
packages, so the 3D recipe needs no download.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, Conv2dSame, DropPath, SelectAdaptivePool2d
from timm.layers.padding import pad_same
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from timm.models.efficientnet import EfficientNet
from torch import nn

from core.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from models import classifier2d
from models.family import ModelConfig, ModelFamily

DEFAULT_TEMPORAL_KERNEL = 3
DEFAULT_CLIP_FRAMES = 16
# layers whose forward works unchanged on (N, C, T, H, W): containers and element-wise steps
_DIMENSION_FREE = (nn.Sequential, nn.ModuleList, nn.Identity, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish,
                   nn.Sigmoid, nn.Dropout, nn.Flatten, DropPath, SelectAdaptivePool2d, EfficientNet,
                   DepthwiseSeparableConv, InvertedResidual)


class InflatedConv3d(nn.Conv3d):
    """A ``Conv2d`` inflated over time (see the module docstring); padding is applied in ``forward``."""

    def __init__(self, conv: nn.Conv2d, temporal_kernel: int):
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"cannot inflate {conv}: only numeric zero padding (or timm's Conv2dSame) is supported")
        frames = temporal_kernel if max(conv.kernel_size) > 1 else 1
        super().__init__(conv.in_channels, conv.out_channels, (frames, *conv.kernel_size),
                         stride=(1, *conv.stride), padding=0, dilation=(1, *conv.dilation), groups=conv.groups,
                         bias=conv.bias is not None)
        self.same_padding = isinstance(conv, Conv2dSame)
        self.spatial_padding = tuple(conv.padding)
        with torch.no_grad():
            self.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames)
            if conv.bias is not None:
                self.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_padding:
            x = pad_same(x, self.kernel_size[1:], self.stride[1:], self.dilation[1:])
        elif any(self.spatial_padding):
            pad_h, pad_w = self.spatial_padding
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
        frames = self.kernel_size[0]
        if frames > 1:  # replicate the edge frames: a clip of one repeated frame stays exactly that
            x = F.pad(x, (0, 0, 0, 0, (frames - 1) // 2, frames // 2), mode="replicate")
        if frames > 1 and self.groups > 1:
            return self._grouped_over_time(x, frames)
        return F.conv3d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _grouped_over_time(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """The same grouped (depthwise) convolution as one sum of ``frames`` convolutions of one frame each:
        torch's CPU backward of a grouped 3D kernel spanning several frames is ~50x slower than this
        (35 s against 0.7 s for a 96-channel 8 x 56 x 56 layer on 2 cores)."""
        length = x.shape[2] - frames + 1
        out = None
        for offset in range(frames):
            part = F.conv3d(x[:, :, offset:offset + length], self.weight[:, :, offset:offset + 1], None, self.stride,
                            0, self.dilation, self.groups)
            out = part if out is None else out + part
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1, 1)


class BatchNormAct3d(nn.Module):
    """timm's ``BatchNormAct2d`` over (N, C, T, H, W): the same statistics (``bn``), then its dropout and
    activation. A wrapper rather than a BatchNorm3d subclass, so that a SyncBatchNorm conversion (multi-GPU
    training) replaces ``bn`` and keeps the activation."""

    def __init__(self, norm: BatchNormAct2d):
        super().__init__()
        self.bn = _batch_norm_3d(norm)
        self.drop = norm.drop
        self.act = norm.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(self.bn(x)))


def _batch_norm_3d(norm: nn.BatchNorm2d) -> nn.BatchNorm3d:
    inflated = nn.BatchNorm3d(norm.num_features, norm.eps, norm.momentum, norm.affine, norm.track_running_stats)
    inflated.load_state_dict(norm.state_dict())
    return inflated


def inflate_layer(layer: nn.Module, temporal_kernel: int) -> nn.Module | None:
    """The 3D form of one layer with its weights, or None for a layer that has no 2D-specific part."""
    if isinstance(layer, nn.Conv2d):
        return InflatedConv3d(layer, temporal_kernel)
    if isinstance(layer, BatchNormAct2d):
        return BatchNormAct3d(layer)
    if type(layer) is nn.BatchNorm2d:
        return _batch_norm_3d(layer)
    if type(layer) is nn.AdaptiveAvgPool2d:
        return nn.AdaptiveAvgPool3d(1 if layer.output_size in (1, (1, 1)) else (1, *layer.output_size))
    if isinstance(layer, _DIMENSION_FREE):
        return None
    raise ValueError(f"cannot inflate a {type(layer).__name__} layer: inflation knows the layers of timm's "
                     f"EfficientNet-Lite encoders (tf_efficientnet_lite0/1/2); this one needs its own 3D form")


def inflate_module(module: nn.Module, temporal_kernel: int = DEFAULT_TEMPORAL_KERNEL) -> nn.Module:
    """``module`` with every 2D layer replaced, in place, by its 3D form (weights inflated); returns it."""
    for name, child in list(module.named_children()):
        inflated = inflate_layer(child, temporal_kernel)
        if inflated is None:
            inflate_module(child, temporal_kernel)
        else:
            setattr(module, name, inflated)
    return module


class InflatedClassifier(nn.Module):
    """An inflated encoder -> average over (T, H, W) -> dropout -> one logit; the parameter names of the
    2D ``DeepFakeClassifier`` it came from (``encoder.*``, ``fc.*``)."""

    def __init__(self, classifier: classifier2d.DeepFakeClassifier, temporal_kernel: int = DEFAULT_TEMPORAL_KERNEL):
        super().__init__()
        self.encoder_name = classifier.encoder_name
        self.temporal_kernel = int(temporal_kernel)
        self.encoder = inflate_module(classifier.encoder, self.temporal_kernel)
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = classifier.dropout
        self.fc = classifier.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, H, W)`` normalised clips -> ``(N, 1)`` logits."""
        features = self.encoder.forward_features(clips)
        return self.fc(self.dropout(self.avg_pool(features).flatten(1)))


def temporal_kernel(config: ModelConfig) -> int:
    value = config.get("temporal_kernel") or DEFAULT_TEMPORAL_KERNEL
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"temporal_kernel must be a positive integer, got {value!r}")
    return value


def build(config: ModelConfig) -> InflatedClassifier:
    return InflatedClassifier(classifier2d.build(config), temporal_kernel(config))


def input_spec(config: ModelConfig) -> InputSpec:
    """The 2D encoder's recipe size (or ``size``), ImageNet mean/std (what its weights expect), clips of
    ``clip_frames`` frames."""
    image = classifier2d.input_spec(config)
    return InputSpec(size_px=image.size_px, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     frames_per_clip=int(config.get("clip_frames") or DEFAULT_CLIP_FRAMES),
                     frame_step=int(config.get("clip_frame_step") or 1), layout="NCTHW")


def trained_2d_model(config: ModelConfig) -> tuple[classifier2d.DeepFakeClassifier, str]:
    """The trained 2D detector the config's ``init_from`` names, read by the one checkpoint loader; it must be
    a ``classifier2d`` checkpoint with the config's encoder (CheckpointError naming the file otherwise)."""
    # imported here: the checkpoint loader imports the registry, which imports this module
    from models.checkpoints import CheckpointError, load_model
    from models.weights import file_sha256

    path = str(config["init_from"])
    loaded = load_model(path)
    if loaded.family != "classifier2d" or loaded.encoder != config.get("encoder"):
        raise CheckpointError(f"init_from {path}: a {loaded.family} model with encoder {loaded.encoder}; inflation "
                              f"needs a classifier2d checkpoint with the config's encoder ({config.get('encoder')})")
    return loaded.model, f"{path} (trained 2D detector, sha256 {file_sha256(path)[:12]})"


def init_weights(model: nn.Module, config: ModelConfig) -> str:
    """The starting weights, inflated: the trained 2D detector ``init_from`` names (encoder and head), else the
    2D encoder's pretrained weights (``pretrained`` as for ``classifier2d``)."""
    if config.get("init_from"):
        image_model, source = trained_2d_model(config)
    else:
        image_model = classifier2d.build(config)
        source = classifier2d.init_weights(image_model, config)
    target = model.module if hasattr(model, "module") else model
    target.load_state_dict(InflatedClassifier(image_model, target.temporal_kernel).state_dict(), strict=True)
    return f"{source}, inflated to 3D (temporal kernel {target.temporal_kernel})"


FAMILY = ModelFamily(build, input_spec, init_weights,
                     "a timm image encoder inflated to 3D (I3D), average over time and space, one logit per clip")
