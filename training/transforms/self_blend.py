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

BROWS = slice(17, 27)  # dlib 68-point eyebrow indices
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # SBI's choice of the mask's peak value
MASK_FLOOR = 1.0 / 512  # mask values below this are 0: outside the mask the pixels stay exactly the source's


def soft_hull_mask(landmarks: np.ndarray, shape: tuple[int, int], erode_px: float, blur_px: float,
                   brow_lift: float = 0.0) -> np.ndarray:
    """Soft face-hull mask (float32 0..1): convex hull of the landmarks, eroded (``erode_px`` > 0) or
    dilated (< 0), then blurred with a Gaussian of sigma ``blur_px``.

    ``brow_lift`` raises the eyebrow points by that fraction of the face height so that the hull takes
    in part of the forehead, as face-swap tools do.
    """
    points = landmarks.astype(np.float32).copy()
    if brow_lift:
        face_height = points[:, 1].max() - points[:, 1].min()
        points[BROWS, 1] -= brow_lift * face_height
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 255)
    radius = int(round(abs(erode_px)))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel) if erode_px > 0 else cv2.dilate(mask, kernel)
    mask = mask.astype(np.float32) / 255.0
    if blur_px > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur_px)
    return mask


def moved_face(image: np.ndarray, centre: np.ndarray, scale: float, shift_px: tuple[float, float],
               colour_shift: tuple[float, float, float]) -> np.ndarray:
    """``image`` scaled about ``centre``, shifted by ``shift_px`` and offset in colour (float32, unclipped)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, float(scale))
    matrix[:, 2] += np.float64(shift_px)
    face = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
    face += np.float32(colour_shift)
    return face


def resample(image: np.ndarray, factor: float) -> np.ndarray:
    """Down- then up-sample: the soft look of a face rendered at a lower resolution and pasted back."""
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(2, int(width * factor)), max(2, int(height * factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def blend(background: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``background * (1 - mask) + foreground * mask``, rounded to uint8."""
    alpha = mask[..., None]
    out = background.astype(np.float32) * (1 - alpha) + foreground.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


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
