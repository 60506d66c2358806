"""Face detection and the face-crop geometry shared by preprocessing, training and inference.

Written once and imported everywhere: the detector scale rule, the MTCNN wrapper, the 1/3 crop
margin, the isotropic resize and the zero padding to a square.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

# MTCNN stage thresholds used by the DFDC winning recipe
THRESHOLDS_PREPROCESS = (0.85, 0.95, 0.95)  # boxes of the training originals: precision first
THRESHOLDS_LANDMARKS = (0.65, 0.75, 0.75)  # 5-point landmarks on already-cut crops
THRESHOLDS_INFERENCE = (0.7, 0.8, 0.8)  # test videos: recall first

CROP_MARGIN = 1 / 3  # of the box width/height, added on each side

# frames per MTCNN call: on the CPU small batches keep the image pyramid in cache (8 frames of 960x540
# run about 1.4x faster than 32, with the same boxes); a GPU wants larger ones
DETECTOR_BATCH_CPU = 8
DETECTOR_BATCH_GPU = 32


def shape_predictor_path() -> Path:
    """dlib's 68-point model inside the face_recognition_models package (found without importing
    that package, which needs the pkg_resources that new setuptools dropped)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed (it ships dlib's "
                           "shape_predictor_68_face_landmarks.dat); install the pinned requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall face_recognition_models")
    return path


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


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} was asked for but CUDA is not available; use --device cpu")
    return device


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
                 resize: str = "cv2", face_order: str = "score"):
        """``batch_size``: frames per MTCNN call (default by device: DETECTOR_BATCH_CPU or _GPU).
        ``fast_pooling``: on the CPU, compute the networks' max pooling separably
        (:mod:`preprocessing.fast_pooling`; bit-identical boxes, 1.2-1.4x faster detection);
        False keeps facenet-pytorch's modules as they are (the benchmarks' baseline).
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
            from preprocessing.fast_pooling import replace_max_pools

            replace_max_pools(self.mtcnn)

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
