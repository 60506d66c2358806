"""Face detectors: the protocol the preprocessing stages and the predictor use, and their registry.

A detector family is one builder in :data:`DETECTORS`: ``builder(settings) -> detector``, where
:class:`DetectorSettings` says what the detector is for (``purpose``: the boxes of the training
originals, the landmarks of cut crops, or the faces of test videos) and how the caller wants it run.
A builder reads the settings it understands and leaves the others (a detector with no image pyramid
has no use for ``resize``). The one place that chooses is the caller's option: ``--detector`` of the
preprocessing stages and the predictor's ``detector`` option (default ``mtcnn``).

A builder's module is registered by one line at the end of this file; a line there (rather than in a
test or a script) is what makes the detector known in the preprocessing worker processes too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.registry import Registry
from faces import mtcnn

# what a detector is built for; a family picks its thresholds (or model) per purpose
PURPOSES = ("preprocess", "landmarks", "inference")
DEFAULT_DETECTOR = "mtcnn"


@dataclass(frozen=True)
class DetectorSettings:
    """What a caller asks of a detector. ``batch_size`` None: the family's default for the device;
    ``fast_pooling``, ``fast_resampling``, ``channels_last_crops``, ``resize`` and ``face_order`` are the MTCNN
    wrapper's (see :mod:`faces.mtcnn`)."""

    purpose: str
    device: str = "auto"
    batch_size: int | None = None
    min_face_size_px: int = 20
    fast_pooling: bool = True
    fast_resampling: bool = True
    channels_last_crops: bool = False
    resize: str = "cv2"
    face_order: str = "score"

    def __post_init__(self):
        if self.purpose not in PURPOSES:
            raise ValueError(f"unknown detector purpose {self.purpose!r}; use one of {', '.join(PURPOSES)}")


class Detector(Protocol):
    """What the stages and the predictor need of a detector."""

    device: str  # the resolved device ("cpu", "cuda:0", ...)
    batch_size: int  # frames per call: callers batch frames of one size by it

    def detect(self, frames: Sequence[np.ndarray], scale: float | str = "auto", landmarks: bool = False):
        """Faces in each RGB frame (frames of one call share one size).

        Per frame an ``(n, 5)`` float32 array ``[x1, y1, x2, y2, score]`` in the frame's own pixels, most
        wanted face first, or None when no face is found. ``scale``: the detector's input scale (a factor,
        or ``auto``: the family's rule by resolution). With ``landmarks=True`` returns ``(boxes, points)``,
        ``points`` per frame an ``(n, 5, 2)`` array of the 5 points (eyes, nose, mouth corners) or None
        (the landmarks stage needs them)."""
        ...


DetectorBuilder = Callable[[DetectorSettings], Detector]
DETECTORS: Registry[DetectorBuilder] = Registry("face detector")


def check_detector(name: str) -> str:
    """``name`` when a detector of that name is registered, else the ValueError listing the known ones."""
    DETECTORS.get(name)
    return name


def build_detector(name: str, settings: DetectorSettings) -> Detector:
    """The registered detector ``name`` built for ``settings``."""
    return DETECTORS.get(name)(settings)


# ---- the registered families: one line each -----------------------------------------------------------
DETECTORS.register("mtcnn", mtcnn.build_mtcnn)
