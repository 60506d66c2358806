"""MTCNN face detection (facenet-pytorch), shared by preprocessing and inference.

Written once and imported everywhere: the thresholds of each use, the detector scale rule, the frame
resize for the detector and the batched MTCNN wrapper (boxes in full-resolution pixels). Registered as
the ``mtcnn`` face detector in :mod:`faces.detectors` (:func:`build_mtcnn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.devices import resolve_device

if TYPE_CHECKING:
    from faces.detectors import DetectorSettings

# MTCNN stage thresholds used by the DFDC winning recipe
THRESHOLDS_PREPROCESS = (0.85, 0.95, 0.95)  # boxes of the training originals: precision first
THRESHOLDS_LANDMARKS = (0.65, 0.75, 0.75)  # 5-point landmarks on already-cut crops
THRESHOLDS_INFERENCE = (0.7, 0.8, 0.8)  # test videos: recall first
THRESHOLDS = {"preprocess": THRESHOLDS_PREPROCESS, "landmarks": THRESHOLDS_LANDMARKS,
              "inference": THRESHOLDS_INFERENCE}  # by the purpose a detector is built for

# frames per MTCNN call: on the CPU small batches keep the image pyramid in cache (8 frames of 960x540
# run about 1.4x faster than 32, with the same boxes); a GPU wants larger ones
DETECTOR_BATCH_CPU = 8
DETECTOR_BATCH_GPU = 32


def detector_scale(width: int, height: int) -> float:
    """Input scale for MTCNN by resolution: small videos up, large ones down.

    2x when the wider side is under 300 px, 1x up to 1000 px, 0.5x above 1000 px, 0.33x above 1900 px.
    """
    side = max(width, height)
    if side < 300:
        return 2.0
    if side <= 1000:
        return 1.0
    if side <= 1900:
        return 0.5
    return 0.33


DETECTOR_RESIZES = ("cv2", "pil")
FACE_ORDERS = ("score", "area")


def resize_for_detector(frame: np.ndarray, factor: float, method: str = "cv2") -> np.ndarray:
    """A frame scaled by ``factor`` for MTCNN (boxes found on it map back by dividing by ``factor``).

    ``cv2``: the new size rounded, OpenCV's area filter down and bilinear up (fast).
    ``pil``: the new size truncated and PIL's default filter (bicubic), the way the DFDC winner halved
    every frame (``Image.resize([s // 2 for s in size])``) in its preprocessing and its predictor;
    PIL's filter is left to PIL's default on purpose, which is what the winner's code got.
    """
    if factor == 1.0:
        return frame
    height, width = frame.shape[:2]
    if method == "pil":
        from PIL import Image

        size = (max(1, int(width * factor)), max(1, int(height * factor)))
        return np.asarray(Image.fromarray(frame).resize(size))
    if method != "cv2":
        raise ValueError(f"unknown detector resize {method!r}; use one of {', '.join(DETECTOR_RESIZES)}")
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


class FaceDetector:
    """MTCNN (facenet-pytorch) on batches of same-sized RGB frames, boxes in full-resolution pixels."""

    def __init__(self, thresholds: Sequence[float] = THRESHOLDS_PREPROCESS, device: str = "auto",
                 min_face_size: int = 20, batch_size: int | None = None, fast_pooling: bool = True,
                 resize: str = "cv2", face_order: str = "score", fast_resampling: bool = True,
                 channels_last_crops: bool = False):
        """``batch_size``: frames per MTCNN call (default by device: DETECTOR_BATCH_CPU or _GPU).
        ``fast_pooling``: on the CPU, compute the networks' max pooling separably
        (:mod:`faces.fast_pooling`; bit-identical boxes, 1.2-1.4x faster detection);
        False keeps facenet-pytorch's modules as they are (the benchmarks' baseline).
        ``fast_resampling``: on the CPU, run the cascade with :mod:`faces.mtcnn_cascade`'s area resampling
        (integral images, all crops at once; bit-identical boxes, about 1.5x faster detection); False calls
        facenet-pytorch's ``detect``.
        ``channels_last_crops`` (with ``fast_resampling``): R-Net and O-Net score their crops channels-last,
        about 1.2x faster detection; boxes then move by float rounding (up to about 2e-4 px), not bit-identical.
        ``resize``: how a frame is scaled for the detector (see :func:`resize_for_detector`).
        ``face_order``: ``score`` (highest first) or ``area`` (largest first, facenet-pytorch's
        ``select_largest`` order, which the DFDC winner used)."""
        from facenet_pytorch import MTCNN

        if resize not in DETECTOR_RESIZES:
            raise ValueError(f"unknown detector resize {resize!r}; use one of {', '.join(DETECTOR_RESIZES)}")
        if face_order not in FACE_ORDERS:
            raise ValueError(f"unknown face order {face_order!r}; use one of {', '.join(FACE_ORDERS)}")
        self.device = resolve_device(device)
        if batch_size is None:
            batch_size = DETECTOR_BATCH_CPU if self.device == "cpu" else DETECTOR_BATCH_GPU
        self.batch_size = int(batch_size)
        self.thresholds = tuple(thresholds)
        self.resize = resize
        self.face_order = face_order
        # select_largest only reorders detect()'s output; its own argsort is kept for "area" so that
        # equal areas come out in the order the winner's predictor saw
        self.mtcnn = MTCNN(margin=0, thresholds=list(thresholds), min_face_size=min_face_size,
                           device=self.device, post_process=False, select_largest=face_order == "area",
                           keep_all=True)
        self.fast_pooling = bool(fast_pooling) and self.device == "cpu"
        if self.fast_pooling:  # on a GPU the stock cuDNN pooling is a single fast kernel
            from faces.fast_pooling import replace_max_pools

            replace_max_pools(self.mtcnn)
        self.fast_resampling = bool(fast_resampling) and self.device == "cpu"
        if self.fast_resampling:
            from faces.mtcnn_cascade import detect as cascade_detect

            self._cascade_detect = cascade_detect
        self.channels_last_crops = bool(channels_last_crops) and self.fast_resampling

    def detect(self, frames: Sequence[np.ndarray], scale: float | str = "auto",
               landmarks: bool = False):
        """Detect faces in each frame.

        Returns per frame an ``(n, 5)`` float32 array ``[x1, y1, x2, y2, score]`` in the frame's own
        pixels, in ``face_order``, or None when no face is found. With
        ``landmarks=True`` also returns per frame an ``(n, 5, 2)`` array of the 5 MTCNN points (or None).
        """
        if len(frames) == 0:
            return ([], []) if landmarks else []
        height, width = frames[0].shape[:2]
        factor = detector_scale(width, height) if scale == "auto" else float(scale)
        boxes_out: list[np.ndarray | None] = []
        points_out: list[np.ndarray | None] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            batch = np.stack([np.ascontiguousarray(resize_for_detector(f, factor, self.resize)) for f in chunk])
            if self.fast_resampling:
                boxes, probs, points = self._cascade_detect(batch, self.mtcnn, self.channels_last_crops)
            else:
                boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
            for frame_boxes, frame_probs, frame_points in zip(boxes, probs, points):
                if frame_boxes is None or len(frame_boxes) == 0:
                    boxes_out.append(None)
                    points_out.append(None)
                    continue
                b = np.asarray(frame_boxes, dtype=np.float32).reshape(-1, 4) / factor
                p = np.asarray(frame_probs, dtype=np.float32).reshape(-1, 1)
                pts = np.asarray(frame_points, dtype=np.float32).reshape(-1, 5, 2) / factor
                order = np.arange(len(p)) if self.face_order == "area" else np.argsort(-p[:, 0], kind="stable")
                boxes_out.append(np.concatenate([b, p], axis=1)[order])
                points_out.append(pts[order])
        return (boxes_out, points_out) if landmarks else boxes_out


def build_mtcnn(settings: DetectorSettings) -> FaceDetector:
    """The ``mtcnn`` entry of the face-detector registry: MTCNN with the thresholds of the purpose."""
    return FaceDetector(THRESHOLDS[settings.purpose], device=settings.device,
                        min_face_size=settings.min_face_size_px, batch_size=settings.batch_size,
                        fast_pooling=settings.fast_pooling, resize=settings.resize, face_order=settings.face_order,
                        fast_resampling=settings.fast_resampling, channels_last_crops=settings.channels_last_crops)
