"""Face-crop geometry shared by preprocessing, training and inference.

Written once and imported everywhere: the 1/3 crop margin (of one box, ``crop_box``, or of a track's
boxes, ``region_box``), the isotropic resize and the zero padding to a square (together the
classifier's input geometry, ``face_to_model_input``), and where a fake's frame sits in its original's
(``centre_crop_offset``, ``pad_to_original``: the fakes are cut with their original's boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

CROP_MARGIN = 1 / 3  # of the box width/height, added on each side


def crop_box(box: Sequence[float], frame_shape: Sequence[int], margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """Integer crop rectangle ``(x1, y1, x2, y2)``: the box plus ``margin`` of its size on each side,
    clipped to the frame.

    The box corners are truncated first, then the margin of the integer size is truncated: for the
    1/3 margin ``int(w * (1 / 3)) == w // 3`` for every size (tested), so this is also the DFDC
    winner's integer arithmetic (``int(b * 2)`` on its half-resolution boxes, ``w // 3``).
    """
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    pad_w = int((x2 - x1) * margin)
    pad_h = int((y2 - y1) * margin)
    height, width = frame_shape[:2]
    return (max(x1 - pad_w, 0), max(y1 - pad_h, 0), min(x2 + pad_w, width), min(y2 + pad_h, height))


def region_box(boxes: Sequence[Sequence[float]], frame_shape: Sequence[int],
               margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """The crop rectangle of a face seen in several boxes (a track over time): their union, plus
    ``margin`` of the union's size on each side, clipped to the frame (``crop_box``'s rules)."""
    if len(boxes) == 0:
        raise ValueError("region_box needs at least one box")
    corners = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)[:, :4]
    union = (corners[:, 0].min(), corners[:, 1].min(), corners[:, 2].max(), corners[:, 3].max())
    return crop_box(union, frame_shape, margin)


# FF++'s Face2Face and NeuralTextures videos are their original cropped about the centre to a multiple of
# 32 px (854 -> 832 wide, 720 -> 704): a fake less than this much smaller is taken as such a crop
CENTRE_CROP_MAX_PX = 32


def centre_crop_offset(frame_shape: Sequence[int], original_shape: Sequence[int]) -> tuple[int, int] | None:
    """Where a fake's frame of ``frame_shape`` (height, width, ...) sits in its original's frame of
    ``original_shape``: ``(left, top)`` px, ``(0, 0)`` at the same size, the centre of a crop less than
    CENTRE_CROP_MAX_PX smaller in each direction; None for any other size (its pixels have no known place
    in the original's, so nothing cut from it with the original's boxes would line up)."""
    shorter, narrower = original_shape[0] - frame_shape[0], original_shape[1] - frame_shape[1]
    if 0 <= narrower < CENTRE_CROP_MAX_PX and 0 <= shorter < CENTRE_CROP_MAX_PX:
        return narrower // 2, shorter // 2
    return None


def pad_to_original(frame: np.ndarray, original_shape: Sequence[int], offset: tuple[int, int]) -> np.ndarray:
    """A centre-cropped fake's frame put back where it was cut from (``offset``: ``centre_crop_offset``):
    zeros around it, the original's height and width in all, so the original's boxes cut the same pixels
    from both (the frame itself when it has the original's size). ValueError when it does not fit there."""
    left, top = offset
    bottom, right = original_shape[0] - frame.shape[0] - top, original_shape[1] - frame.shape[1] - left
    if min(left, top, bottom, right) < 0:
        raise ValueError(f"a {frame.shape[1]}x{frame.shape[0]} frame does not fit at ({left}, {top}) px in a "
                         f"{original_shape[1]}x{original_shape[0]} frame")
    if (left, top, bottom, right) == (0, 0, 0, 0):
        return frame
    return cv2.copyMakeBorder(frame, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)


def crop_face(frame: np.ndarray, box: Sequence[float], margin: float = CROP_MARGIN) -> np.ndarray:
    """The face with ``margin`` of context on each side (a view into ``frame``)."""
    x1, y1, x2, y2 = crop_box(box, frame.shape, margin)
    return frame[y1:y2, x1:x2]


RESIZE_ROUNDINGS = ("round", "truncate")


def isotropic_resize(image: np.ndarray, size: int, interpolation_down: int = cv2.INTER_AREA,
                     interpolation_up: int = cv2.INTER_CUBIC, rounding: str = "round") -> np.ndarray:
    """Resize so that the longer side is ``size``, keeping the aspect ratio.

    ``rounding``: the shorter side's new length rounded (training's), or truncated like the DFDC
    winner's predictor (``int(side * scale)``; for a square crop that side is the width, so a square
    can come out one pixel narrower, as it did there).
    """
    height, width = image.shape[:2]
    if max(height, width) == size:
        return image
    if rounding == "truncate":
        # the winner's arithmetic: the longer side (the height when equal) set to size, the other scaled
        if width > height:
            scale = size / width
            new_w, new_h = size, max(1, int(height * scale))
        else:
            scale = size / height
            new_w, new_h = max(1, int(width * scale)), size
    elif rounding == "round":
        scale = size / max(height, width)
        new_w = max(1, int(round(width * scale)))
        new_h = max(1, int(round(height * scale)))
    else:
        raise ValueError(f"unknown resize rounding {rounding!r}; use one of {', '.join(RESIZE_ROUNDINGS)}")
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation_up if scale > 1 else interpolation_down)


def pad_to_square(image: np.ndarray, size: int) -> np.ndarray:
    """Place ``image`` (sides <= size) at the centre of a zero ``size x size`` canvas."""
    height, width = image.shape[:2]
    canvas = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    top = (size - height) // 2
    left = (size - width) // 2
    canvas[top:top + height, left:left + width] = image
    return canvas


def face_to_model_input(face: np.ndarray, size: int, resize_rounding: str = "round") -> np.ndarray:
    """Isotropic resize to ``size`` then zero padding to a square: the classifier's input geometry."""
    return pad_to_square(isotropic_resize(face, size, rounding=resize_rounding), size)


def clip_full_side_px(size_px: int, crop_share: float) -> int:
    """The side a square clip is resized to before its ``size_px`` crop covering ``crop_share`` of it (the
    clip families' geometry: 128 px clips, 112 px crops at 0.875)."""
    if not 0 < crop_share <= 1:
        raise ValueError(f"clip_crop must be in (0, 1], got {crop_share}")
    return max(int(size_px), int(round(size_px / crop_share)))


def centre_crop_clip(frames: np.ndarray, size_px: int, crop_share: float) -> np.ndarray:
    """A square clip ``(T, S, S, 3)`` as validation sees it: every frame resized (bilinear) to
    ``clip_full_side_px`` and its centred ``size_px`` square kept."""
    side = clip_full_side_px(size_px, crop_share)
    resized = np.stack([cv2.resize(frame, (side, side), interpolation=cv2.INTER_LINEAR) for frame in frames])
    start = (side - int(size_px)) // 2
    return np.ascontiguousarray(resized[:, start:start + int(size_px), start:start + int(size_px)])
