"""The "hardcore" cutouts of the DFDC winning recipe: black out a part of the face so that the
classifier cannot rely on one region (eyes, mouth, nose, one half of the face, one part of the crop).

Everything works on the landmarks stored by preprocessing (crop pixels), so no detector runs at
training time. Each function takes the RGB crop (H, W, 3 uint8) and returns a new array; randomness
comes from the ``numpy.random.Generator`` passed in, so a sample's cutout is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The winner's probabilities: 5-point landmark cutout when landmarks exist, else the hull half,
# else a bit mask.
LANDMARK_CUTOUT_P = 0.7
HULL_CUTOUT_P = 0.2
BITMASK_CUTOUT_P = 0.1
# Inside the landmark cutout: eyes with p 0.5, else mouth with p 0.5, else nose with p 0.5.
LANDMARK_PART_P = 0.5
BITMASK_TRIES = 5
BITMASK_MIN_DIFF_PX = 20  # a fake must keep more than this many non-zero SSIM-diff pixels

# dlib 68-point indices: jaw 0-16, then the brows 26..17 walked back, gives the face outline.
HULL_OUTLINE = np.array([*range(17), *range(26, 16, -1)])
HALVES = ("top", "bottom", "left", "right")

LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)


def line_mask(shape: tuple[int, int], start, end, half_width_px: int) -> np.ndarray:
    """A uint8 mask (1 inside) of the segment start-end widened by ``half_width_px`` on each side.

    One thick polyline draw instead of iterated binary dilation of a one-pixel line: the same band
    (rounded ends instead of diamond ends) at a fraction of the cost.
    """
    mask = np.zeros(shape, dtype=np.uint8)
    p1 = (int(round(start[0])), int(round(start[1])))
    p2 = (int(round(end[0])), int(round(end[1])))
    cv2.line(mask, p1, p2, 1, thickness=2 * max(int(half_width_px), 0) + 1, lineType=cv2.LINE_8)
    return mask


def _blackout(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[mask > 0] = 0
    return out


def eyes_mask(shape, landmarks5: np.ndarray) -> np.ndarray:
    """Band between the eye centres, a quarter of the eye distance wide on each side."""
    left, right = landmarks5[LEFT_EYE], landmarks5[RIGHT_EYE]
    distance = float(np.linalg.norm(right - left))
    return line_mask(shape, left, right, int(distance // 4))


def mouth_mask(shape, landmarks5: np.ndarray) -> np.ndarray:
    """Band between the mouth corners, a third of the mouth width wide on each side."""
    left, right = landmarks5[MOUTH_LEFT], landmarks5[MOUTH_RIGHT]
    distance = float(np.linalg.norm(right - left))
    return line_mask(shape, left, right, int(distance // 3))


def nose_mask(shape, landmarks5: np.ndarray) -> np.ndarray:
    """Band from the nose tip to the middle of the mouth, a quarter of the mouth width on each side."""
    left, right = landmarks5[MOUTH_LEFT], landmarks5[MOUTH_RIGHT]
    mouth_centre = (left + right) / 2
    distance = float(np.linalg.norm(right - left))
    return line_mask(shape, landmarks5[NOSE], mouth_centre, int(distance // 4))


def blackout_eyes(image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    return _blackout(image, eyes_mask(image.shape[:2], landmarks5))


def blackout_mouth(image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    return _blackout(image, mouth_mask(image.shape[:2], landmarks5))


def blackout_nose(image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    return _blackout(image, nose_mask(image.shape[:2], landmarks5))


def hull_mask(shape, landmarks68: np.ndarray) -> np.ndarray:
    """uint8 mask of the face outline polygon (jaw + brows) of the 68 dlib points."""
    mask = np.zeros(shape, dtype=np.uint8)
    outline = np.round(landmarks68[HULL_OUTLINE]).astype(np.int32)
    cv2.fillPoly(mask, [outline], 1)
    return mask


def hull_half_mask(shape, landmarks68: np.ndarray, half: str) -> np.ndarray:
    """The part of the face hull on one side (``top``/``bottom``/``left``/``right``) of its centroid."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    mask = hull_mask(shape, landmarks68)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask
    cy, cx = int(ys.mean()), int(xs.mean())
    if half == "top":
        mask[cy:, :] = 0
    elif half == "bottom":
        mask[:cy, :] = 0
    elif half == "left":
        mask[:, cx:] = 0
    else:
        mask[:, :cx] = 0
    return mask


def blackout_hull_half(image: np.ndarray, landmarks68: np.ndarray, half: str) -> np.ndarray:
    return _blackout(image, hull_half_mask(image.shape[:2], landmarks68, half))


def bit_masks(shape) -> list[np.ndarray]:
    """The candidate keep-masks (1 = keep): four halves, four quarters removed, two diagonal pairs
    removed."""
    height, width = shape[:2]
    mid_h, mid_w = height // 2, width // 2
    masks = []
    for rows, cols in [(slice(None, mid_h), slice(None)), (slice(mid_h, None), slice(None)),
                       (slice(None), slice(None, mid_w)), (slice(None), slice(mid_w, None))]:
        keep = np.ones((height, width), dtype=np.uint8)
        keep[rows, cols] = 0
        masks.append(keep)
    quarters = [(slice(None, mid_h), slice(None, mid_w)), (slice(None, mid_h), slice(mid_w, None)),
                (slice(mid_h, None), slice(None, mid_w)), (slice(mid_h, None), slice(mid_w, None))]
    for rows, cols in quarters:
        keep = np.ones((height, width), dtype=np.uint8)
        keep[rows, cols] = 0
        masks.append(keep)
    for first, second in [(0, 3), (1, 2)]:
        keep = np.ones((height, width), dtype=np.uint8)
        for rows, cols in (quarters[first], quarters[second]):
            keep[rows, cols] = 0
        masks.append(keep)
    return masks


def choose_bit_mask(shape, diff: np.ndarray | None, is_fake: bool,
                    rng: np.random.Generator) -> np.ndarray | None:
    """A keep-mask that leaves a fake more than ``BITMASK_MIN_DIFF_PX`` of its SSIM-diff area; any
    mask for a real. None when no try succeeds (the sample is left as it is)."""
    candidates = bit_masks(shape)
    for _ in range(BITMASK_TRIES):
        keep = candidates[int(rng.integers(len(candidates)))]
        if not is_fake:
            return keep
        if diff is not None and np.count_nonzero(diff * keep) > BITMASK_MIN_DIFF_PX:
            return keep
    return None


def blackout_bitmask(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return image * keep[..., None].astype(image.dtype)


def change_padding(image: np.ndarray, padding_part: int) -> np.ndarray:
    """Cut the context around the face down to 1/padding_part of the face size on each side.

    Crops carry 1/3 of the box on each side, so the face is the middle 3/5 of the crop and
    ``padding_part=3`` keeps the crop as it is.
    """
    if padding_part <= 3:
        return image
    height, width = image.shape[:2]
    pad_h = int((3 / 5) * height / padding_part)
    pad_w = int((3 / 5) * width / padding_part)
    top, left = max(height // 5 - pad_h, 0), max(width // 5 - pad_w, 0)
    bottom, right = min(height - height // 5 + pad_h, height), min(width - width // 5 + pad_w, width)
    return image[top:bottom, left:right]


@dataclass
class CutoutInputs:
    """What the cutouts of one sample may use; any of the landmark/diff arrays may be missing."""

    landmarks5: np.ndarray | None = None
    landmarks68: np.ndarray | None = None
    diff: np.ndarray | None = None
    is_fake: bool = False


def apply_hardcore(image: np.ndarray, inputs: CutoutInputs, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Draw one cutout with the winner's probabilities; returns the image and the cutout's name
    (``none``, ``eyes``, ``mouth``, ``nose``, ``hull_<half>``, ``bitmask``)."""
    if inputs.landmarks5 is not None and rng.random() < LANDMARK_CUTOUT_P:
        if rng.random() < LANDMARK_PART_P:
            return blackout_eyes(image, inputs.landmarks5), "eyes"
        if rng.random() < LANDMARK_PART_P:
            return blackout_mouth(image, inputs.landmarks5), "mouth"
        if rng.random() < LANDMARK_PART_P:
            return blackout_nose(image, inputs.landmarks5), "nose"
        return image, "none"
    if rng.random() < HULL_CUTOUT_P:
        if inputs.landmarks68 is None:
            return image, "none"
        half = HALVES[int(rng.integers(len(HALVES)))]
        return blackout_hull_half(image, inputs.landmarks68, half), f"hull_{half}"
    if rng.random() < BITMASK_CUTOUT_P:
        keep = choose_bit_mask(image.shape, inputs.diff, inputs.is_fake, rng)
        if keep is None:
            return image, "none"
        return blackout_bitmask(image, keep), "bitmask"
    return image, "none"
