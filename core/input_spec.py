"""What a model takes as input, and the one conversion of face crops (or clips of them) into it.

An :class:`InputSpec` travels with a model: its family derives it from the training config
(``models.registry``), every checkpoint stores it (``to_dict``), and training (transforms, datasets,
normalisation) and prediction read it. So a model trained at 224 px with Kinetics normalisation on
16-frame clips is fed exactly that, whoever feeds it.

The conversion, in two steps:

* placing (NumPy, per face or per frame of a clip): the face crop resized so that its longer side is
  ``size_px`` and centred on a zero ``size_px`` square (``core.geometry.face_to_model_input``), RGB uint8;
* batching (torch, on the device): a list of placed faces ``(H, W, 3)`` or clips ``(T, H, W, 3)`` becomes
  a float tensor in the spec's ``layout``, ``(x / 255 - mean) / std`` per channel.

Inputs are RGB uint8 (0..255); ``mean`` and ``std`` are on the 0..1 scale, like torchvision's and timm's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.geometry import RESIZE_ROUNDINGS, face_to_model_input

# ImageNet statistics: timm's and torchvision's image models, and the DFDC recipe's encoders
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Kinetics-400 statistics: torchvision's video models (r3d_18, mc3_18, r2plus1d_18) were trained with them
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

# "isotropic_pad": the longer side to size_px (aspect ratio kept), centred on a zero square
RESIZE_RULES = ("isotropic_pad",)
# tensor layout -> the permutation from the stacked channels-last NumPy batch (N, [T,] H, W, C)
LAYOUTS: dict[str, tuple[int, ...]] = {
    "NCHW": (0, 3, 1, 2),  # one image per sample: 2D models
    "NCTHW": (0, 4, 1, 2, 3),  # one clip per sample: 3D (video) models
}
PIXEL_MAX = 255.0


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects. Frozen and hashable: models with equal specs share their inputs."""

    size_px: int  # side of the square input
    resize: str = "isotropic_pad"  # how a face crop becomes the square (RESIZE_RULES)
    resize_rounding: str = "round"  # the shorter side's new length: rounded or truncated (core.geometry)
    mean: tuple[float, ...] = IMAGENET_MEAN  # per channel (RGB), 0..1 scale
    std: tuple[float, ...] = IMAGENET_STD
    frames_per_clip: int = 1  # 1 for an image model; a clip model's temporal length
    frame_step: int = 1  # video frames between consecutive frames of a clip (1: consecutive)
    layout: str = "NCHW"  # the tensor a batch becomes (LAYOUTS)

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        problems = []
        if isinstance(self.size_px, bool) or not isinstance(self.size_px, int) or self.size_px < 1:
            problems.append(f"size_px must be a positive integer, got {self.size_px!r}")
        if self.resize not in RESIZE_RULES:
            problems.append(f"resize {self.resize!r} is not one of {', '.join(RESIZE_RULES)}")
        if self.resize_rounding not in RESIZE_ROUNDINGS:
            problems.append(f"resize_rounding {self.resize_rounding!r} is not one of {', '.join(RESIZE_ROUNDINGS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append(f"mean and std need 3 values (RGB) and std > 0, got {self.mean} and {self.std}")
        for name in ("frames_per_clip", "frame_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        elif self.layout == "NCHW" and self.frames_per_clip != 1:
            problems.append(f"an NCHW (image) model takes 1 frame per sample, not frames_per_clip={self.frames_per_clip}")
        if problems:
            raise ValueError("invalid input spec: " + "; ".join(problems))

    @property
    def is_clip(self) -> bool:
        """True for a model that takes clips ``(N, 3, T, H, W)`` rather than images."""
        return self.layout == "NCTHW"

    def replace(self, **changes: Any) -> InputSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) for a checkpoint or a JSON file."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """The inverse of ``to_dict``; ValueError naming unknown or missing keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an input spec is a mapping of its fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"input spec has unknown field(s) {', '.join(unknown)} (written by a newer version?); "
                             f"known: {', '.join(sorted(known))}")
        if "size_px" not in data:
            raise ValueError("input spec lacks size_px")
        return cls(**dict(data))


def place_face(face: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One face crop (RGB uint8, any size) -> the ``size_px`` square the model sees (RGB uint8)."""
    return face_to_model_input(face, spec.size_px, spec.resize_rounding)


def place_clip(frames: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """The crops of one clip (``frames_per_clip`` of them, each RGB uint8) -> ``(T, size, size, 3)`` uint8,
    every frame placed like ``place_face`` (one region for the whole clip is the clip stage's job)."""
    if len(frames) != spec.frames_per_clip:
        raise ValueError(f"a clip of {len(frames)} frames given to a model that takes {spec.frames_per_clip}")
    return np.stack([place_face(frame, spec) for frame in frames])


def normalize_batch(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 RGB ``(N, 3, H, W)`` or ``(N, 3, T, H, W)`` -> float32 ``(x / 255 - mean) / std`` on ``images``'
    device, contiguous: the model input of training, validation and prediction."""
    shape = (1, 3) + (1,) * (images.dim() - 2)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=images.device).view(shape)
    std = torch.tensor(spec.std, dtype=torch.float32, device=images.device).view(shape)
    return ((images.float() / PIXEL_MAX - mean) / std).contiguous()


def to_layout(placed: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """A stacked channels-last uint8 batch ``(N, [T,] H, W, 3)`` -> the spec's layout (a view)."""
    permutation = LAYOUTS[spec.layout]
    if placed.dim() != len(permutation):
        raise ValueError(f"a {spec.layout} model takes {len(permutation) - 1}-dimensional samples "
                         f"({'clips (T, H, W, 3)' if spec.is_clip else 'images (H, W, 3)'}), got {placed.dim() - 1}")
    return placed.permute(*permutation)


def sample_to_uint8_tensor(placed: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """One placed sample (``(H, W, 3)`` or ``(T, H, W, 3)`` uint8) -> uint8 ``(3, H, W)`` or ``(3, T, H, W)``,
    contiguous: what a training loader returns (normalised later on the device by ``normalize_batch``)."""
    return to_layout(torch.from_numpy(placed)[None], spec)[0].contiguous()


def to_model_batch(placed: Sequence[np.ndarray], spec: InputSpec, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Placed faces ``(H, W, 3)`` or clips ``(T, H, W, 3)`` (RGB uint8) -> the normalised model batch in the
    spec's layout, contiguous (a channels-last model converts it in its first layer)."""
    batch = to_layout(torch.from_numpy(np.stack(placed)).to(device), spec)
    return normalize_batch(batch, spec).to(dtype).contiguous()
