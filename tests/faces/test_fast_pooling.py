"""The separable max pooling that replaces MTCNN's nn.MaxPool2d on the CPU: bit-identical outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.video import iter_frames
from datasets.layout import DataLayout
from faces.fast_pooling import SeparableMaxPool2d, replace_max_pools
from faces.mtcnn import THRESHOLDS_PREPROCESS, FaceDetector
from tests.conftest import same_detections


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1), (2, 1)])
@pytest.mark.parametrize("ceil_mode", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_separable_pool_equals_max_pool2d_bit_for_bit(kernel, stride, ceil_mode, channels_last):
    generator = torch.Generator().manual_seed(kernel * 100 + stride * 10 + ceil_mode)
    for shape in [(3, 5, 22, 22), (2, 4, 23, 17), (1, 3, 3, 3), (4, 2, 9, 46), (1, 1, 2, 5)]:
        x = torch.randn(shape, generator=generator)
        x[0, 0, 0, 0] = float("nan")  # NaN propagates as in the stock module
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        stock = nn.MaxPool2d(kernel, stride, ceil_mode=ceil_mode)
        try:
            expected = stock(x)
        except RuntimeError:  # an input smaller than the window: the same error as the stock module
            with pytest.raises(RuntimeError, match="too small"):
                SeparableMaxPool2d(kernel, stride, ceil_mode)(x)
            continue
        got = SeparableMaxPool2d(kernel, stride, ceil_mode)(x)
        assert got.shape == expected.shape, shape
        assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(expected, nan=7.0)), shape
        assert torch.isnan(got).sum() == torch.isnan(expected).sum()
        # the output keeps the stock module's memory layout (the next convolution's rounding depends on it)
        for layout in (torch.contiguous_format, torch.channels_last):
            assert got.is_contiguous(memory_format=layout) == expected.is_contiguous(memory_format=layout), shape


def test_mtcnn_networks_get_all_six_pools_replaced():
    detector = FaceDetector(THRESHOLDS_PREPROCESS, device="cpu", fast_pooling=False)
    assert replace_max_pools(detector.mtcnn) == 6
    assert not any(isinstance(m, nn.MaxPool2d) for m in detector.mtcnn.modules())
    assert FaceDetector(device="cpu").fast_pooling
    assert any(isinstance(m, nn.MaxPool2d) for m in FaceDetector(device="cpu", fast_pooling=False).mtcnn.modules())


def test_detector_boxes_are_identical_with_and_without_fast_pooling(sample_root, real_small_or_none):
    videos = [e.path for e in DataLayout(sample_root).scan()[0] if not e.is_fake][:2]
    if real_small_or_none is not None:  # the 1080p DFDC clip and an FF++ clip when present
        videos += [real_small_or_none / "dfdc_train_part_0" / name for name in ("brtujopkby.mp4", "634.mp4")]
    fast = FaceDetector(THRESHOLDS_PREPROCESS, device="cpu", fast_pooling=True)
    stock = FaceDetector(THRESHOLDS_PREPROCESS, device="cpu", fast_pooling=False)
    compared = 0
    for path in videos:
        frames = [frame for _, frame in iter_frames(path, every=25)][:4]
        compared += same_detections(fast, stock, frames)
    assert compared >= 2 * len(videos)  # faces were found, so boxes were really compared
