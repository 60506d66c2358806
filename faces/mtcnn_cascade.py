"""MTCNN's three-stage cascade with exact, faster area resampling on the CPU.

facenet-pytorch's ``detect_face`` spends about a third of its CPU time in ``F.interpolate(mode="area")``:
the image pyramid is resampled from a channels-last float tensor (torch's slowest layout for 3 channels),
and every candidate box of stages 2 and 3 is cut and resampled in its own Python-level call. This module
runs the same cascade (facenet-pytorch's networks and its box helpers, so every box formula is the
library's own) and replaces only that resampling.

Why it is exact: area resampling (``adaptive_avg_pool2d``) averages each output cell's window of input
pixels, the window's sum divided by its height, then by its width, in float32. The pixels are whole
numbers (uint8 frames), so the window sums are whole numbers below 2**24 and the same in any summation
order; here they come from an integral image (``cv2.integral``, int32), four look-ups per cell, for all
cells of a pyramid level or of all crops at once, then the same two float32 divisions. The resampled
tensors are handed to the networks in the memory layout facenet-pytorch's have (the pyramid channels-last,
the crops contiguous), since the convolutions' rounding depends on the layout, and stages 2 and 3 score the same crops in the same order
and batch sizes. ``tests/faces/test_mtcnn_cascade.py`` checks boxes, scores and landmarks against
facenet-pytorch's ``detect`` bit for bit on real clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    detect_face,
    fixed_batch_process,
    generateBoundingBox,
    pad,
    rerec,
)
from torchvision.ops.boxes import batched_nms

PNET_CELL_PX = 12  # P-Net's input window: the smallest face the cascade sees at scale 1
NORMALISE_SHIFT, NORMALISE_FACTOR = 127.5, 0.0078125  # MTCNN's input normalisation


def integral_images(frames: np.ndarray) -> np.ndarray:
    """``(B, H + 1, W + 1, 3)`` int32 running sums of ``(B, H, W, 3)`` uint8 frames (a zero first row
    and column), from which any window's pixel sum is four look-ups."""
    count, height, width, channels = frames.shape
    integrals = np.empty((count, height + 1, width + 1, channels), dtype=np.int32)
    for frame, integral in zip(frames, integrals):  # written in place (np.stack of the results copies)
        cv2.integral(np.ascontiguousarray(frame), sum=integral, sdepth=cv2.CV_32S)
    return integrals


def _area_windows(length_in: np.ndarray | int, length_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) input index of each of ``length_out`` output cells,
    adaptive pooling's rule: floor(i * in / out) to ceil((i + 1) * in / out). ``length_in`` may be one
    length per crop (shape ``(K, 1)``)."""
    cells = np.arange(length_out, dtype=np.int64)
    start = (cells * length_in) // length_out
    end = ((cells + 1) * length_in + length_out - 1) // length_out
    return start, end


def _window_means(sums: np.ndarray, rows: tuple[np.ndarray, np.ndarray],
                  cols: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Window sums (int32, ``(..., h, w, 3)``) to means the way torch's area pooling computes them in
    float32: the sum divided by the window's height, then by its width."""
    means = sums.astype(np.float32)
    means /= (rows[1] - rows[0]).astype(np.float32)[..., :, None, None]
    means /= (cols[1] - cols[0]).astype(np.float32)[..., None, :, None]
    return means


def resample_frames(integrals: np.ndarray, height_px: int, width_px: int) -> torch.Tensor:
    """All frames area-resampled to ``height_px x width_px``: ``(B, 3, h, w)`` float32, channels-last."""
    rows = _area_windows(integrals.shape[1] - 1, height_px)
    cols = _area_windows(integrals.shape[2] - 1, width_px)
    strips = np.take(integrals, rows[1], axis=1) - np.take(integrals, rows[0], axis=1)  # row-window sums
    sums = np.take(strips, cols[1], axis=2) - np.take(strips, cols[0], axis=2)
    return torch.from_numpy(_window_means(sums, rows, cols)).permute(0, 3, 1, 2)


def resample_crops(integrals: np.ndarray, frame_index: np.ndarray, top: np.ndarray, bottom: np.ndarray,
                   left: np.ndarray, right: np.ndarray, side_px: int, channels_last: bool = False) -> torch.Tensor:
    """Rows ``top:bottom`` and columns ``left:right`` of frame ``frame_index[k]`` for each crop k, each
    area-resampled to ``side_px`` square: ``(K, 3, side, side)`` float32, contiguous as facenet-pytorch's
    crops are (each is a one-frame slice, which torch resamples into a contiguous tensor), or channels-last."""
    rows = _area_windows((bottom - top)[:, None], side_px)
    cols = _area_windows((right - left)[:, None], side_px)
    rows = (rows[0] + top[:, None], rows[1] + top[:, None])
    cols = (cols[0] + left[:, None], cols[1] + left[:, None])
    _, height, width, channels = integrals.shape
    # flat positions of the (crop, row, column) corners in the integral images, one channel apart
    base = frame_index.astype(np.int64)[:, None, None] * height
    flat = integrals.reshape(-1, channels)

    def corner(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return np.take(flat, ((base + row[:, :, None]) * width + col[:, None, :]).ravel(), axis=0)

    sums = corner(rows[1], cols[1]) - corner(rows[0], cols[1]) - corner(rows[1], cols[0]) + corner(rows[0], cols[0])
    means = _window_means(sums.reshape(len(top), side_px, side_px, channels), rows, cols)
    if channels_last:
        return torch.from_numpy(means).permute(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(means.transpose(0, 3, 1, 2)))


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - NORMALISE_SHIFT) * NORMALISE_FACTOR


def pyramid_scales(height_px: int, width_px: int, min_face_px: float, factor: float) -> list[float]:
    """The scales of the image pyramid: from 12 / min_face down by ``factor`` while the shorter side
    stays at least 12 px (MTCNN's rule)."""
    scale = PNET_CELL_PX / min_face_px
    shorter = min(height_px, width_px) * scale
    scales = []
    while shorter >= PNET_CELL_PX:
        scales.append(scale)
        scale *= factor
        shorter *= factor
    return scales


def _proposals(integrals: np.ndarray, pnet, threshold: float, min_face_px: float, factor: float):
    """Stage 1: P-Net over the pyramid, per-scale NMS (0.5), NMS over all scales (0.7) per frame, the
    boxes moved by their regression and squared. Returns (boxes (n, 5), frame index (n,))."""
    height, width = integrals.shape[1] - 1, integrals.shape[2] - 1
    boxes, frame_index, picks, offset = [], [], [], 0
    for scale in pyramid_scales(height, width, min_face_px, factor):
        level = _normalise(resample_frames(integrals, int(height * scale + 1), int(width * scale + 1)))
        regression, probs = pnet(level)
        level_boxes, level_index = generateBoundingBox(regression, probs[:, 1], scale, threshold)
        boxes.append(level_boxes)
        frame_index.append(level_index)
        picks.append(batched_nms(level_boxes[:, :4], level_boxes[:, 4], level_index, 0.5) + offset)
        offset += level_boxes.shape[0]
    pick = torch.cat(picks)
    boxes, frame_index = torch.cat(boxes)[pick], torch.cat(frame_index)[pick]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], frame_index, 0.7)
    boxes, frame_index = boxes[pick], frame_index[pick]
    box_w, box_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    moved = torch.stack([boxes[:, 0] + boxes[:, 5] * box_w, boxes[:, 1] + boxes[:, 6] * box_h,
                         boxes[:, 2] + boxes[:, 7] * box_w, boxes[:, 3] + boxes[:, 8] * box_h, boxes[:, 4]])
    return rerec(moved.permute(1, 0)), frame_index


class _EmptyCrop(Exception):
    """A box with no pixels left after clipping to the frame."""


def _crops(integrals: np.ndarray, boxes: torch.Tensor, frame_index: torch.Tensor, side_px: int,
           channels_last: bool):
    """The boxes cut (clipped to the frame) and resampled to ``side_px``, normalised; :class:`_EmptyCrop`
    when a box is empty after clipping."""
    height, width = integrals.shape[1] - 1, integrals.shape[2] - 1
    y, ey, x, ex = pad(boxes, width, height)
    if np.any(ey <= y - 1) or np.any(ex <= x - 1):
        raise _EmptyCrop
    pixels = resample_crops(integrals, frame_index.numpy(), (y - 1).astype(np.int64), ey.astype(np.int64),
                            (x - 1).astype(np.int64), ex.astype(np.int64), side_px, channels_last)
    return _normalise(pixels)


def _refine(integrals, boxes, frame_index, rnet, threshold: float, channels_last: bool):
    """Stage 2: R-Net on 24 px crops, threshold, NMS (0.7) per frame, regression, squared."""
    crops = _crops(integrals, boxes, frame_index, 24, channels_last)
    regression, probs = fixed_batch_process(crops, rnet)
    score = probs[:, 1]
    keep = score > threshold
    boxes = torch.cat((boxes[keep, :4], score[keep].unsqueeze(1)), dim=1)
    frame_index, regression = frame_index[keep], regression[keep]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], frame_index, 0.7)
    return rerec(bbreg(boxes[pick], regression[pick])), frame_index[pick]


def _output(integrals, boxes, frame_index, onet, threshold: float, channels_last: bool):
    """Stage 3: O-Net on 48 px crops, threshold, landmarks, regression, NMS ("Min", 0.7) per frame."""
    crops = _crops(integrals, boxes, frame_index, 48, channels_last)
    regression, points, probs = fixed_batch_process(crops, onet)
    score = probs[:, 1]
    keep = score > threshold
    points = points[keep].permute(1, 0)
    boxes = torch.cat((boxes[keep, :4], score[keep].unsqueeze(1)), dim=1)
    frame_index, regression = frame_index[keep], regression[keep]
    box_w = boxes[:, 2] - boxes[:, 0] + 1
    box_h = boxes[:, 3] - boxes[:, 1] + 1
    points_x = box_w.repeat(5, 1) * points[:5, :] + boxes[:, 0].repeat(5, 1) - 1
    points_y = box_h.repeat(5, 1) * points[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
    points = torch.stack((points_x, points_y)).permute(2, 1, 0)
    boxes = bbreg(boxes, regression)
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], frame_index, 0.7, "Min")
    return boxes[pick], frame_index[pick], points[pick]


def _per_frame(count: int, boxes: np.ndarray, points: np.ndarray, frame_index: np.ndarray):
    """The cascade's rows split by frame (facenet-pytorch's ``detect_face`` return shape)."""
    frame_boxes = np.empty(count, dtype=object)
    frame_points = np.empty(count, dtype=object)
    for i in range(count):
        rows = np.where(frame_index == i)
        frame_boxes[i], frame_points[i] = boxes[rows].copy(), points[rows].copy()
    return frame_boxes, frame_points


def detect_faces(frames: np.ndarray, mtcnn, channels_last_crops: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """facenet-pytorch's ``detect_face`` on same-sized uint8 RGB frames ``(B, H, W, 3)`` with the
    networks, thresholds, minimum face size and pyramid factor of ``mtcnn`` (a ``facenet_pytorch.MTCNN``
    on the CPU): per frame an ``(n, 5)`` array of boxes and scores and an ``(n, 5, 2)`` array of
    landmarks, bit-identical to the library's. ``channels_last_crops``: stages 2 and 3 score their crops
    channels-last (R-Net and O-Net about 1.5-2x faster on the CPU); boxes then differ from the library's
    by float rounding (up to about 2e-4 px), no longer bit for bit."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    thresholds = mtcnn.thresholds
    with torch.no_grad():
        integrals = integral_images(frames)
        boxes, frame_index = _proposals(integrals, mtcnn.pnet, thresholds[0], mtcnn.min_face_size, mtcnn.factor)
        points = torch.zeros(0, 5, 2)
        try:
            if len(boxes):
                boxes, frame_index = _refine(integrals, boxes, frame_index, mtcnn.rnet, thresholds[1],
                                             channels_last_crops)
            if len(boxes):
                boxes, frame_index, points = _output(integrals, boxes, frame_index, mtcnn.onet, thresholds[2],
                                                     channels_last_crops)
        except _EmptyCrop:  # the library drops such a crop (and misaligns its rows): its own path decides
            return detect_face(frames, mtcnn.min_face_size, mtcnn.pnet, mtcnn.rnet, mtcnn.onet,
                               thresholds, mtcnn.factor, "cpu")
    return _per_frame(len(frames), boxes.numpy(), points.numpy(), frame_index.numpy())


def detect(frames: Sequence[np.ndarray] | np.ndarray, mtcnn, channels_last_crops: bool = False):
    """``mtcnn.detect(frames, landmarks=True)`` computed by :func:`detect_faces`: per frame boxes
    ``(n, 4)``, scores ``(n,)`` and landmarks ``(n, 5, 2)`` (None, [None], None when no face), in the
    library's order (by score, or largest area first with ``select_largest``)."""
    frame_boxes, frame_points = detect_faces(np.asarray(frames), mtcnn, channels_last_crops)
    boxes, probs, points = [], [], []
    for box, point in zip(frame_boxes, frame_points):
        if len(box) == 0:
            boxes.append(None)
            probs.append([None])
            points.append(None)
            continue
        if mtcnn.select_largest:
            order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
            box, point = box[order], point[order]
        boxes.append(box[:, :4])
        probs.append(box[:, 4])
        points.append(point)
    return boxes, probs, points
