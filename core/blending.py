"""Blending primitives: a soft face-hull mask from landmarks, a moved copy of a face, a down/up
resample and the alpha blend.

Used by the self-blended training fakes (``training.transforms.self_blend``) and by the sample-dataset
generator's fake makers (``sample_data.sample_faces``).
"""

from __future__ import annotations

import cv2
import numpy as np

BROWS = slice(17, 27)  # dlib 68-point eyebrow indices


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
