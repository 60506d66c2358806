"""Train and validation transforms (albumentations 2 API) and the conversion to a model tensor.

Everything a model expects comes from its input spec (``core.input_spec.InputSpec``): the size, the
resize rounding and the normalisation. The geometry (isotropic resize, zero padding to a square: the
spec's ``isotropic_pad`` rule) is ``core.geometry``'s, which inference uses too, wrapped as
albumentations transforms.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

from core.geometry import isotropic_resize, pad_to_square
from core.input_spec import InputSpec, normalize_batch

# (down, up) interpolation pairs the train resize draws from; inference uses the first.
RESIZE_INTERPOLATIONS = (
    (cv2.INTER_AREA, cv2.INTER_CUBIC),
    (cv2.INTER_AREA, cv2.INTER_LINEAR),
    (cv2.INTER_LINEAR, cv2.INTER_LINEAR),
)
# The recipe's noise variance 10..50 on the 0..255 scale, as albumentations 2's std fraction of 255.
GAUSS_NOISE_STD_RANGE = (10 ** 0.5 / 255, 50 ** 0.5 / 255)


class IsotropicResize(A.ImageOnlyTransform):
    """``core.geometry.isotropic_resize`` as a transform: longer side to ``max_side`` px."""

    def __init__(self, max_side: int, interpolation_down: int = cv2.INTER_AREA,
                 interpolation_up: int = cv2.INTER_CUBIC, rounding: str = "round", p: float = 1.0):
        super().__init__(p=p)
        self.max_side = int(max_side)
        self.interpolation_down = interpolation_down
        self.interpolation_up = interpolation_up
        self.rounding = rounding

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return isotropic_resize(img, self.max_side, self.interpolation_down, self.interpolation_up, self.rounding)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_side", "interpolation_down", "interpolation_up", "rounding")


class FancyPCA(A.ImageOnlyTransform):
    """AlexNet's colour augmentation as the recipe used it: one RGB shift along the principal
    components of the image's colours, ``eigvecs @ (alpha * eigvals)`` with ``alpha ~ N(0, sigma)``.

    albumentations 2's FancyPCA scales every pixel's deviation instead and spends ~40 ms on a
    380 px image; the covariance here comes from a strided subset of pixels and the shift is one
    lookup table, well under a millisecond.
    """

    MAX_PIXELS = 16384  # enough pixels for a stable 3x3 covariance

    def __init__(self, alpha: float = 0.1, p: float = 0.5):
        super().__init__(p=p)
        self.alpha = float(alpha)

    def get_params(self) -> dict:
        return {"alpha_value": float(self.random_generator.normal(0.0, self.alpha))}

    def apply(self, img: np.ndarray, alpha_value: float = 0.0, **params) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3:
            return img
        pixels = img.reshape(-1, 3)
        step = max(1, pixels.shape[0] // self.MAX_PIXELS)
        sample = pixels[::step].astype(np.float32) / 255.0
        eigvals, eigvecs = np.linalg.eigh(np.cov(sample, rowvar=False))
        shift = eigvecs @ (alpha_value * eigvals) * 255.0
        lut = np.clip(np.arange(256, dtype=np.float32)[:, None] + shift[None, :], 0, 255)
        return cv2.LUT(img, np.round(lut).astype(np.uint8).reshape(256, 1, 3))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha",)


class PadToSquare(A.ImageOnlyTransform):
    """``core.geometry.pad_to_square``: centre on a zero ``size x size`` canvas."""

    def __init__(self, size: int, p: float = 1.0):
        super().__init__(p=p)
        self.size = int(size)

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        return pad_to_square(img, self.size)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size",)


def train_transform_list(spec: InputSpec) -> list[A.BasicTransform]:
    """The recipe's train transforms in order (each with its probability), to the model's input ``spec``."""
    size = spec.size_px
    return [
        A.ImageCompression(quality_range=(60, 100), p=0.5),
        A.GaussNoise(std_range=GAUSS_NOISE_STD_RANGE, p=0.1),
        A.GaussianBlur(blur_limit=(3, 3), p=0.05),
        A.HorizontalFlip(p=0.5),
        A.OneOf([IsotropicResize(size, down, up, spec.resize_rounding) for down, up in RESIZE_INTERPOLATIONS], p=1),
        PadToSquare(size),
        A.OneOf([A.RandomBrightnessContrast(), FancyPCA(), A.HueSaturationValue()], p=0.7),
        A.ToGray(p=0.2),
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.8, 1.2), rotate=(-10, 10),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5),
    ]


def create_train_transforms(spec: InputSpec, seed: int | None = None) -> A.Compose:
    return A.Compose(train_transform_list(spec), seed=seed)


def create_val_transforms(spec: InputSpec) -> A.Compose:
    """The inference geometry: the spec's placement with its first interpolation pair (no augmentation)."""
    down, up = RESIZE_INTERPOLATIONS[0]
    return A.Compose([IsotropicResize(spec.size_px, down, up, spec.resize_rounding), PadToSquare(spec.size_px)])


def image_to_tensor(image: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) normalised as ``spec`` says: the model input of one image."""
    return normalize_batch(image_to_uint8_tensor(image)[None], spec)[0]


def image_to_uint8_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> uint8 (3, H, W), what the training loader returns; ``normalize_batch``
    (``core.input_spec``, re-exported here) makes model input of a batch on the device (a quarter of the
    bytes through the loader, no float work in the workers)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """uint8 (3, H, W) -> RGB uint8 (H, W, 3) (for TensorBoard and the augmentation grid)."""
    return np.ascontiguousarray(tensor.detach().cpu().numpy().transpose(1, 2, 0))
