"""Train and validation transforms of face-track clips (albumentations 2, the ``images`` target).

Every transform is called once per clip on all its frames: albumentations draws the parameters once
(crop position, flip, JPEG quality, noise map, colour shift...) and applies them to every frame, so a
chunk keeps the motion of the face and only the face's own changes over time remain (the temporal
traces a 3D model learns from). The clips are square (the clip stage placed the face); the geometry is
a resize to ``size_px / crop_share`` and a ``size_px`` crop: random in training, centred in validation
(128 px clips, 112 px crops: the Medics' random crops).
"""

from __future__ import annotations

import albumentations as A
import numpy as np

from core.geometry import clip_full_side_px
from core.input_spec import InputSpec
from training.transforms.augmentations import GAUSS_NOISE_STD_RANGE, FancyPCA

DEFAULT_CROP_SHARE = 0.875  # 112 of 128 px


def full_side_px(spec: InputSpec, crop_share: float) -> int:
    """The side a clip is resized to before its ``size_px`` crop (prediction's geometry too:
    ``core.geometry.centre_crop_clip``)."""
    return clip_full_side_px(spec.size_px, crop_share)


def clip_geometry(spec: InputSpec, crop_share: float, train: bool) -> list[A.BasicTransform]:
    side = full_side_px(spec, crop_share)
    crop = A.RandomCrop(spec.size_px, spec.size_px) if train else A.CenterCrop(spec.size_px, spec.size_px)
    return [A.Resize(side, side), crop]


def clip_pixel_transforms() -> list[A.BasicTransform]:
    """The pixel-level augmentations (each with its probability), the 2D recipe's without its geometry."""
    return [
        A.ImageCompression(quality_range=(60, 100), p=0.5),
        A.GaussNoise(std_range=GAUSS_NOISE_STD_RANGE, p=0.1),
        A.GaussianBlur(blur_limit=(3, 3), p=0.05),
        A.OneOf([A.RandomBrightnessContrast(), FancyPCA(), A.HueSaturationValue()], p=0.7),
        A.ToGray(p=0.2),
    ]


def clip_train_transform_list(spec: InputSpec, crop_share: float = DEFAULT_CROP_SHARE) -> list[A.BasicTransform]:
    """Random crop, horizontal flip, then the pixel-level augmentations, in order."""
    return [*clip_geometry(spec, crop_share, train=True), A.HorizontalFlip(p=0.5), *clip_pixel_transforms()]


def create_clip_train_transforms(spec: InputSpec, crop_share: float = DEFAULT_CROP_SHARE,
                                 seed: int | None = None) -> A.Compose:
    return A.Compose(clip_train_transform_list(spec, crop_share), seed=seed)


def create_clip_val_transforms(spec: InputSpec, crop_share: float = DEFAULT_CROP_SHARE) -> A.Compose:
    """The centred crop only (what prediction sees of a clip)."""
    return A.Compose(clip_geometry(spec, crop_share, train=False))


def transform_clip(transforms: A.Compose, frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames through ``transforms`` with one draw of parameters for all of them."""
    return np.ascontiguousarray(np.stack(transforms(images=frames)["images"]))


def clip_to_uint8_tensor(frames: np.ndarray):
    """``(T, H, W, 3)`` uint8 -> uint8 ``(3, T, H, W)``: what the training loader returns for a clip."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))


def clip_preview(clip) -> np.ndarray:
    """uint8 ``(3, T, H, W)`` -> RGB ``(H, 3 W, 3)``: its first, middle and last frames side by side
    (TensorBoard's training samples)."""
    frames = clip.detach().cpu().numpy().transpose(1, 2, 3, 0)
    chosen = [frames[0], frames[len(frames) // 2], frames[-1]]
    return np.ascontiguousarray(np.concatenate(chosen, axis=1))
