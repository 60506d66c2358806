"""Face tracks: the faces of a video's sampled frames linked into people.

``link_faces(frame_of_face, boxes)`` gives every face a person id (``-1``: a dropped short track).
Faces of consecutive sampled frames are matched one to one (``scipy.optimize.linear_sum_assignment``,
best box IoU first) through a gate that scales with the face: two boxes may belong to the same person
when their sides differ by at most ``max_side_ratio`` and either their IoU is at least ``min_iou`` or
their centres are at most ``max_shift`` face sides apart (a small face that moves a few pixels has a
low IoU; the shift is measured in its own size). A track that found no face keeps waiting for
``max_gap`` sampled frames (a missed detection, a turned head), then ends.

Tracks with fewer than ``min_faces`` faces are dropped as detector false positives (a hand, a poster,
a face on a screen seen for a moment); when that would drop every track, the longest one is kept, so a
video with faces always has a person. Kept tracks are numbered ``0, 1, ...`` in order of their first
face. The module is shared: prediction groups face scores by person with it, and anything that has a
video's boxes per frame (preprocessing's stored boxes) can call it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TrackOptions", "link_faces", "box_iou", "auto_min_faces"]

# the fraction of the sampled frames a person must be seen in, with min_faces "auto"
AUTO_MIN_FRACTION = 0.1


@dataclass(frozen=True)
class TrackOptions:
    min_iou: float = 0.3
    max_shift: float = 0.5  # centre distance, in face sides (the mean side of the two boxes)
    max_side_ratio: float = 1.6
    max_gap: int = 2  # sampled frames a track may miss before it ends
    min_faces: int | None = None  # None: auto_min_faces(number of sampled frames)

    def __post_init__(self):
        if not 0 <= self.min_iou <= 1:
            raise ValueError(f"min_iou must be in [0, 1], got {self.min_iou}")
        if self.max_shift < 0 or self.max_side_ratio < 1 or self.max_gap < 0:
            raise ValueError("max_shift must be >= 0, max_side_ratio >= 1 and max_gap >= 0")
        if self.min_faces is not None and self.min_faces < 1:
            raise ValueError(f"min_faces must be at least 1 (or auto), got {self.min_faces}")


def auto_min_faces(n_frames: int) -> int:
    """A person must be seen in 10% of the sampled frames, and at least twice (once with one frame)."""
    return max(1, min(n_frames, max(2, math.ceil(AUTO_MIN_FRACTION * n_frames))))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, >=4) with every box of ``b`` (m, >=4), ``[x1, y1, x2, y2]``: (n, m)."""
    a = np.asarray(a, dtype=np.float64)[:, None, :4]
    b = np.asarray(b, dtype=np.float64)[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _affinity(last: np.ndarray, faces: np.ndarray, options: TrackOptions) -> np.ndarray:
    """(tracks, faces) IoU where the size-aware gate lets the pair through, else -1."""
    iou = box_iou(last, faces)
    side_a = np.sqrt(np.clip((last[:, 2] - last[:, 0]) * (last[:, 3] - last[:, 1]), 1e-6, None))[:, None]
    side_b = np.sqrt(np.clip((faces[:, 2] - faces[:, 0]) * (faces[:, 3] - faces[:, 1]), 1e-6, None))[None, :]
    ratio = np.maximum(side_a, side_b) / np.minimum(side_a, side_b)
    centre_a = np.stack([(last[:, 0] + last[:, 2]) / 2, (last[:, 1] + last[:, 3]) / 2], axis=1)[:, None]
    centre_b = np.stack([(faces[:, 0] + faces[:, 2]) / 2, (faces[:, 1] + faces[:, 3]) / 2], axis=1)[None]
    shift = np.linalg.norm(centre_a - centre_b, axis=2) / ((side_a + side_b) / 2)
    admissible = (ratio <= options.max_side_ratio) & ((iou >= options.min_iou) | (shift <= options.max_shift))
    # IoU first; among pairs that only the shift lets through, the nearer one
    return np.where(admissible, iou + 1e-3 * (1 - np.minimum(shift, 1)), -1.0)


def link_faces(frame_of_face: Sequence[int], boxes: np.ndarray, options: TrackOptions | None = None,
               n_frames: int | None = None) -> np.ndarray:
    """Person id per face (``-1``: in a dropped short track), faces given in any order.

    ``frame_of_face``: the frame index of each face; ``boxes``: (faces, >=4) ``[x1, y1, x2, y2, ...]`` in
    frame pixels; ``n_frames``: how many frames were sampled (for ``min_faces`` auto; default: the
    number of distinct frames with a face).
    """
    from scipy.optimize import linear_sum_assignment

    options = options or TrackOptions()
    frames = np.asarray(frame_of_face, dtype=np.int64).ravel()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(frames), -1)
    if len(frames) == 0:
        return np.zeros(0, dtype=np.int64)
    track_of_face = np.full(len(frames), -1, dtype=np.int64)
    active: list[tuple[int, int, int]] = []  # (track, last face, sampled frames missed)
    n_tracks = 0
    for frame in np.unique(frames):
        faces = np.flatnonzero(frames == frame)
        matched_faces: set[int] = set()
        still_active = []
        if active:
            affinity = _affinity(boxes[[last for _, last, _ in active]], boxes[faces], options)
            rows, cols = linear_sum_assignment(-affinity)
            matched = {r: c for r, c in zip(rows, cols) if affinity[r, c] >= 0}
            for row, (track, last, missed) in enumerate(active):
                if row in matched:
                    face = faces[matched[row]]
                    track_of_face[face] = track
                    matched_faces.add(int(face))
                    still_active.append((track, int(face), 0))
                elif missed < options.max_gap:
                    still_active.append((track, last, missed + 1))
        for face in faces:
            if int(face) not in matched_faces:
                track_of_face[face] = n_tracks
                still_active.append((n_tracks, int(face), 0))
                n_tracks += 1
        active = still_active
    lengths = np.bincount(track_of_face, minlength=n_tracks)
    n_frames = int(n_frames) if n_frames is not None else len(np.unique(frames))
    min_faces = options.min_faces if options.min_faces is not None else auto_min_faces(n_frames)
    kept = np.flatnonzero(lengths >= min_faces)
    if kept.size == 0:
        kept = np.array([int(np.argmax(lengths))])  # never drop every face of a video
    # tracks were numbered by first face already; renumber the kept ones 0, 1, ...
    new_id = np.full(n_tracks, -1, dtype=np.int64)
    new_id[kept] = np.arange(kept.size)
    return new_id[track_of_face]
