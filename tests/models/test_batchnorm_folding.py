"""models.batchnorm_folding: batch normalisation folded into convolutions, on real timm EfficientNets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.input_spec import InputSpec, to_model_batch
from core.video import read_sampled_frames
from models.batchnorm_folding import fold_batchnorm, folded_if_equal
from models.classifier2d import DeepFakeClassifier


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _lite0_with_trained_statistics(seed: int = 3) -> DeepFakeClassifier:
    """A real Lite0 whose batch normalisations hold non-trivial statistics and affine parameters (fresh
    ones are the identity, which would fold into nothing)."""
    torch.manual_seed(seed)
    model = DeepFakeClassifier("tf_efficientnet_lite0")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_folding_removes_every_norm_and_keeps_the_outputs(real_small_or_none):
    model = _lite0_with_trained_statistics()
    norms = _norms(model)
    folded, count = fold_batchnorm(model)
    assert count == norms == 49 and _norms(folded) == 0
    assert _norms(model) == norms  # the caller's model is left as it was
    if real_small_or_none is not None:  # real frames (whole, resized) as the check input
        _, frames = read_sampled_frames(real_small_or_none / "dfdc_train_part_0" / "519.mp4", 4)
        batch = to_model_batch(np.stack([np.asarray(f[:224, :224]) for f in frames]), InputSpec(224))
    else:
        batch = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, got = model(batch), folded(batch)
    assert torch.allclose(expected, got, rtol=0, atol=1e-4)


class _NormBeforeConv(nn.Module):
    """Registers a convolution then a normalisation but normalises the input, not the convolution's output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_a_model_whose_order_is_not_its_computation_is_kept_as_it_is():
    torch.manual_seed(0)
    model = _NormBeforeConv().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-2, 2)
        model.bn.running_var.uniform_(0.2, 3.0)
    batch = torch.randn(2, 4, 8, 8)
    assert fold_batchnorm(model)[1] == 1  # the order rule pairs them...
    kept, count = folded_if_equal(model, batch)  # ...and the check catches that the outputs differ
    assert kept is model and count == 0 and _norms(kept) == 1


@pytest.mark.parametrize("preset, folded", [("default", True), ("winner", False)])
def test_the_predictor_folds_in_the_default_preset_only(preset, folded):
    from models.checkpoints import LoadedModel
    from prediction.options import resolve_options
    from prediction.predictor import VideoPredictor

    model = _lite0_with_trained_statistics()
    loaded = LoadedModel(model=model, encoder="tf_efficientnet_lite0", input_spec=InputSpec(224), path=None)
    predictor = VideoPredictor(models=[loaded], options=resolve_options(preset, device="cpu"))
    assert (_norms(predictor.models[0].model) == 0) == folded
    assert _norms(model) == 49  # the caller's model is never changed
