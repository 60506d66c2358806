"""``OUT.persons.json``: per video, per person (face track) what the verdict was made of.

One entry per video, keyed by its row name::

    {"video.mp4": {"probability": 0.93, "aggregate": "per-person", "pooled_probability": 0.61,
                   "per_person_probability": 0.93, "fallback_reason": null,
                   "persons": [{"person": 0, "score": 0.93, "frames": [...], "boxes": [[x1, y1, x2, y2], ...],
                                "detector_probabilities": [...], "face_scores": [...],
                                "model_face_scores": [[...], ...]}, ...],
                   "dropped_tracks": {"person": -1, "score": null, "frames": [...], ...} or null,
                   "raw_probability": 0.97 or null}}

``face_scores`` are the mean over the models, ``model_face_scores`` one list per model; boxes are
full-frame pixels; ``raw_probability`` is the score without calibration (null when no model's temperature
was applied: then it is ``probability``). ``read_persons`` gives the same values back (``PersonRecord`` per person).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.files import write_json_atomic


@dataclass
class PersonRecord:
    person: int  # -1: the faces of dropped short tracks
    score: float | None  # None for the dropped faces
    frames: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    detector_probabilities: list[float] = field(default_factory=list)
    face_scores: list[float] = field(default_factory=list)
    model_face_scores: list[list[float]] = field(default_factory=list)

    @property
    def n_faces(self) -> int:
        return len(self.frames)


@dataclass
class VideoPersons:
    probability: float
    aggregate: str
    pooled_probability: float | None
    per_person_probability: float | None
    fallback_reason: str | None
    persons: list[PersonRecord] = field(default_factory=list)
    dropped_tracks: PersonRecord | None = None
    # the score without calibration (``--calibration off``); null when no temperature was applied
    raw_probability: float | None = None


def person_record(pred, person: int) -> PersonRecord:
    """The faces of one person of a prediction (``person=-1``: its dropped faces)."""
    chosen = np.flatnonzero(pred.face_persons == person)
    scores = pred.face_scores[:, chosen]
    return PersonRecord(
        person, float(pred.person_scores[person]) if person >= 0 else None,
        [int(f) for f in pred.face_frame_indices[chosen]],
        [[float(v) for v in box[:4]] for box in pred.face_boxes[chosen]],
        [float(v) for v in pred.face_boxes[chosen, 4]],
        [float(v) for v in scores.mean(axis=0)] if scores.size else [],
        [[float(v) for v in row] for row in scores])


def video_persons(pred) -> VideoPersons:
    dropped = person_record(pred, -1) if np.any(pred.face_persons == -1) else None
    return VideoPersons(float(pred.probability), pred.aggregate, pred.pooled_probability, pred.per_person_probability,
                        pred.fallback_reason, [person_record(pred, k) for k in range(pred.n_persons)], dropped,
                        pred.raw_probability)


def write_persons(path: str | os.PathLike, predictions) -> Path:
    """Every prediction's persons, keyed by row name, sorted (one atomic write)."""
    data = {pred.name: asdict(video_persons(pred)) for pred in sorted(predictions, key=lambda p: p.name)}
    write_json_atomic(path, data)
    return Path(path)


def read_persons(path: str | os.PathLike) -> dict[str, VideoPersons]:
    data = json.loads(Path(path).read_text())
    out = {}
    for name, entry in data.items():
        dropped = entry.pop("dropped_tracks")
        persons = [PersonRecord(**p) for p in entry.pop("persons")]
        out[name] = VideoPersons(**entry, persons=persons,
                                 dropped_tracks=PersonRecord(**dropped) if dropped is not None else None)
    return out
