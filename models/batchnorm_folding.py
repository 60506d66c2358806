"""Batch normalisation folded into the convolution before it, for inference.

In eval mode a BatchNorm2d after a Conv2d is a per-channel affine map, so it can be computed by the
convolution itself: weights scaled by gamma / sqrt(var + eps), bias shifted (torch's
``fuse_conv_bn_weights``). That saves a whole pass over every activation map (on the CPU about a quarter of
an EfficientNet's time); the scores move by float rounding (about 1e-6 on the parity checkpoint), so the
winner preset, which gives the original's answers, does not fold.

Pairs are found by module order: in each module, a BatchNorm2d registered right after a Conv2d (other
modules may sit between them, another convolution may not) normalises that convolution's output; this holds
for timm's EfficientNet blocks (``conv_pw`` / ``bn1``, ``conv_dw`` / ``bn2``, ...). The normalisation's own
activation and dropout (timm's ``BatchNormAct2d``) stay in its place. :func:`folded_if_equal` checks the
result on a batch and keeps the model as it was when the outputs differ.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

FOLD_TOLERANCE = 1e-3  # largest |logit difference| a folded model may show on the check batch


def _fold_pair(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Module:
    """Fold ``norm`` into ``conv`` (in place); returns what replaces ``norm``: its dropout and activation."""
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var,
                                        norm.eps, norm.weight, norm.bias)
    conv.weight, conv.bias = weight, bias
    after = [m for m in (getattr(norm, "drop", None), getattr(norm, "act", None)) if m is not None]
    return nn.Sequential(*after) if after else nn.Identity()


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (in eval mode) with each Conv2d -> BatchNorm2d pair folded; and how many."""
    folded = copy.deepcopy(model).eval()
    count = 0
    for parent in list(folded.modules()):
        conv = None
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                conv = child
            elif (isinstance(child, nn.BatchNorm2d) and conv is not None and child.track_running_stats
                  and child.running_mean is not None and child.num_features == conv.out_channels):
                setattr(parent, name, _fold_pair(conv, child))
                conv, count = None, count + 1
    return folded, count


def folded_if_equal(model: nn.Module, check_batch: torch.Tensor) -> tuple[nn.Module, int]:
    """:func:`fold_batchnorm`'s copy when its outputs on ``check_batch`` are within FOLD_TOLERANCE of the
    model's (a model whose module order does not follow its computation fails this), else ``model`` and 0."""
    folded, count = fold_batchnorm(model)
    if count == 0:
        return model, 0
    model.eval()
    with torch.inference_mode():
        expected, got = model(check_batch), folded(check_batch)
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=0, atol=FOLD_TOLERANCE):
        return model, 0
    return folded, count
