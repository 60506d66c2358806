"""An exact, faster stand-in for ``nn.MaxPool2d`` in MTCNN's three networks on the CPU.

PyTorch's CPU max pooling for NCHW tensors also computes the arg-max indices and is slow on the
small, many-channel maps of R-Net and O-Net (the profile of a stage-1 run put it above the
convolutions). A ``k x k`` maximum is the maximum over ``k`` columns of the maximum over ``k`` rows,
so it can be computed with ``2 (k - 1)`` element-wise maxima of strided views; max is exact, so
the output is bit-identical to ``nn.MaxPool2d`` (ceil mode included: a window cut by the border
takes the elements that exist), 3-8x faster on MTCNN's shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _output_size(size: int, kernel: int, stride: int, ceil_mode: bool) -> int:
    # PyTorch's rule for padding 0, dilation 1: a ceil-mode window must start inside the input
    out = (size - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size:
        out -= 1
    return out


def _count(length: int, stride: int) -> int:
    """How many of the positions 0, stride, 2 stride, ... lie in [0, length)."""
    return max(0, (length + stride - 1) // stride)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class SeparableMaxPool2d(nn.Module):
    """``nn.MaxPool2d(kernel, stride, padding=0, ceil_mode=...)`` computed as row then column maxima."""

    def __init__(self, kernel_size: int, stride: int, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        height, width = x.shape[-2:]
        out_h = _output_size(height, k, s, self.ceil_mode)
        out_w = _output_size(width, k, s, self.ceil_mode)
        if out_h <= 0 or out_w <= 0:  # the stock module raises a clear error for this
            return F.max_pool2d(x, k, s, ceil_mode=self.ceil_mode)
        layout = _memory_format(x)
        # maxima over the k columns of each window, then over its k rows; a ceil-mode window cut by the
        # border takes only the offsets that exist (no -inf padding copy)
        rows = x[..., 0:(out_w - 1) * s + 1:s].clone(memory_format=layout)
        for offset in range(1, k):
            n = min(out_w, _count(width - offset, s))
            if n > 0:
                view = rows[..., :n]
                torch.maximum(view, x[..., offset:offset + (n - 1) * s + 1:s], out=view)
        out = rows[..., 0:(out_h - 1) * s + 1:s, :].clone(memory_format=layout)
        for offset in range(1, k):
            n = min(out_h, _count(height - offset, s))
            if n > 0:
                view = out[..., :n, :]
                torch.maximum(view, rows[..., offset:offset + (n - 1) * s + 1:s, :], out=view)
        # the stock module keeps the input's memory layout (convolutions may hand over channels-last
        # maps), and the next convolution's rounding depends on it
        return out.contiguous(memory_format=layout)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


def replace_max_pools(module: nn.Module) -> int:
    """Swap every padding-0, dilation-1 ``nn.MaxPool2d`` inside ``module`` for the separable one;
    returns how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.MaxPool2d):
            kernel, stride = child.kernel_size, child.stride
            square = all(isinstance(v, int) or (len(set(v)) == 1) for v in (kernel, stride))
            if square and child.padding in (0, (0, 0)) and child.dilation in (1, (1, 1)) \
                    and not child.return_indices:
                as_int = (lambda v: v if isinstance(v, int) else v[0])  # noqa: E731
                setattr(module, name, SeparableMaxPool2d(as_int(kernel), as_int(stride), child.ceil_mode))
                replaced += 1
        else:
            replaced += replace_max_pools(child)
    return replaced
