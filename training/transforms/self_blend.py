"""Self-blended fakes (SBI, Shiohara & Yamasaki, CVPR 2022): a face blended back into itself.

A real face is copied, transformed (colour, brightness/contrast, sharpness or softness, a small
scale and translation) and pasted back over the original through a soft mask made from its own
68 landmarks (convex hull, randomly deformed, eroded or dilated, blurred, scaled by a blend ratio).
The result carries the blending boundary and the statistics mismatch of a face swap without any fake
video. One implementation: the trainer's ``"fakes": "self_blended"`` samples and the sample
generator's ``self_blend`` fakes both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.blending import blend, moved_face, resample, soft_hull_mask

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's choice of the mask's peak value
MASK_FLOOR = 1.0 / 512  # mask values below this are 0: outside the mask the pixels stay exactly the source's


@dataclass(frozen=True)
class SelfBlendParams:
    """One self-blended sample's random choices; lengths are in face sizes (the landmarks' extent)."""

    scale: float  # of the pasted face about the landmarks' centre
    shift: tuple[float, float]
    colour_shift: tuple[float, float, float]  # RGB offset
    contrast: float  # gain about the face's mean
    sharpness: float  # < 1: down/up-sampling factor (softer); > 1: unsharp-mask amount + 1 (sharper)
    deform: float  # hull points moved by up to this much
    erode: float  # > 0 erode, < 0 dilate the hull
    blur: float  # mask feather (Gaussian sigma)
    ratio: float  # the mask's peak value

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SelfBlendParams:
        shift = rng.uniform(-0.03, 0.03, 2)
        colour = rng.uniform(-20, 20, 3)
        soft = rng.random() < 0.5
        return cls(scale=float(rng.uniform(0.95, 1.05)), shift=(float(shift[0]), float(shift[1])),
                   colour_shift=tuple(float(c) for c in colour), contrast=float(rng.uniform(0.85, 1.15)),
                   sharpness=float(rng.uniform(0.4, 0.8) if soft else rng.uniform(1.3, 2.0)),
                   deform=float(rng.uniform(0.0, 0.04)), erode=float(rng.uniform(-0.06, 0.06)),
                   blur=float(rng.uniform(0.02, 0.06)),
                   ratio=float(BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))]))


def face_size(landmarks: np.ndarray) -> float:
    extent = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(max(extent.max(), 1.0))


def self_blend_mask(landmarks68: np.ndarray, shape: tuple[int, int], params: SelfBlendParams,
                    rng: np.random.Generator) -> np.ndarray:
    """The blending mask: the landmarks' hull, each point moved at random by up to ``deform`` face
    sizes, eroded or dilated, blurred, times the blend ratio; values under ``MASK_FLOOR`` are 0."""
    size = face_size(landmarks68)
    points = landmarks68 + rng.uniform(-params.deform, params.deform, landmarks68.shape) * size
    mask = soft_hull_mask(points, shape, params.erode * size, params.blur * size) * params.ratio
    mask[mask < MASK_FLOOR] = 0.0
    return mask


def self_blend(image: np.ndarray, landmarks68: np.ndarray, params: SelfBlendParams,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(the self-blended image, its mask): ``image`` (RGB uint8) changed only where the mask is > 0."""
    size = face_size(landmarks68)
    centre = landmarks68.mean(axis=0)
    face = moved_face(image, centre, params.scale, (params.shift[0] * size, params.shift[1] * size),
                      params.colour_shift)
    face = (face - face.mean(axis=(0, 1))) * params.contrast + face.mean(axis=(0, 1))
    face = np.clip(face, 0, 255)
    if params.sharpness < 1:
        face = resample(face, params.sharpness)
    else:
        blurred = cv2.GaussianBlur(face, (0, 0), max(1.0, 0.01 * size))
        face = np.clip(face + (params.sharpness - 1) * (face - blurred), 0, 255)
    mask = self_blend_mask(landmarks68, image.shape[:2], params, rng)
    return blend(image, face, mask), mask
