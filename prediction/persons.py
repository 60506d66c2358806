"""``OUT.persons.json``: per video, per person (face track) what the verdict was made of.

One entry per video, keyed by its row name::

    {"video.mp4": {"probability": 0.93, "aggregate": "per-person", "pooled_probability": 0.61,
                   "per_person_probability": 0.93, "fallback_reason": null,
                   "model_kinds": ["2d", "3d"], "family_probabilities": {"2d": 0.55, "3d": 0.67},
                   "persons": [{"person": 0, "score": 0.93, "family_scores": {"2d": 0.9, "3d": 0.96},
                                "model_scores": [0.9, 0.96], "frames": [...], "boxes": [[x1, y1, x2, y2], ...],
                                "detector_probabilities": [...], "face_scores": [...],
                                "model_face_scores": [[...], ...],
                                "chunks": [{"model": 1, "frames": [first, last], "score": 0.97}, ...]}, ...],
                   "dropped_tracks": {"person": -1, "score": null, "frames": [...], ...} or null,
                   "raw_probability": 0.97 or null}}

``score`` is the person's pooled score: per kind of model (``2d``: image models on the face crops,
``3d``: clip models on chunks of the person's face-track clip; ``family_scores``, null where a kind has
no input for the person) the models combined, then the kinds pooled by the family weights
(``prediction.families``). ``model_scores`` and ``model_kinds`` follow the run's models in order (the
metrics file's ``models``). ``face_scores`` are the mean over the image models, ``model_face_scores``
one list per image model; ``chunks`` the clip models' scored chunks; boxes are full-frame pixels.
Scores are calibrated (each model's temperature applied to its score before the models and kinds are
combined); ``raw_probability`` is the video's score without calibration (null when no model's temperature
was applied: then it is ``probability``). ``read_persons`` gives the same values back (``PersonRecord`` per
person).
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
    family_scores: dict[str, float | None] = field(default_factory=dict)  # per kind ("2d", "3d")
    model_scores: list[float | None] = field(default_factory=list)  # per model of the run
    chunks: list[dict] = field(default_factory=list)  # {"model", "frames": [first, last], "score"}

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
    model_kinds: list[str] = field(default_factory=list)
    family_probabilities: dict[str, float | None] = field(default_factory=dict)
    # the score without calibration (``--calibration off``); null when no temperature was applied
    raw_probability: float | None = None


def _optional(value) -> float | None:
    return None if value is None else float(value)


def person_record(pred, person: int) -> PersonRecord:
    """The faces of one person of a prediction (``person=-1``: its dropped faces)."""
    chosen = np.flatnonzero(pred.face_persons == person)
    scores = pred.face_scores[:, chosen]
    kept = person >= 0
    return PersonRecord(
        person, _optional(pred.person_scores[person]) if kept else None,
        [int(f) for f in pred.face_frame_indices[chosen]],
        [[float(v) for v in box[:4]] for box in pred.face_boxes[chosen]],
        [float(v) for v in pred.face_boxes[chosen, 4]],
        [float(v) for v in scores.mean(axis=0)] if scores.size else [],
        [[float(v) for v in row] for row in scores],
        {kind: _optional(values[person]) for kind, values in pred.family_person_scores.items()} if kept else {},
        [_optional(values[person]) for values in pred.model_person_scores] if kept else [],
        [{"model": c.model, "frames": [int(c.frames[0]), int(c.frames[1])], "score": float(c.score)}
         for c in pred.chunks if c.person == person])


def video_persons(pred) -> VideoPersons:
    dropped = person_record(pred, -1) if np.any(pred.face_persons == -1) else None
    return VideoPersons(float(pred.probability), pred.aggregate, pred.pooled_probability, pred.per_person_probability,
                        pred.fallback_reason, [person_record(pred, k) for k in range(pred.n_persons)], dropped,
                        list(pred.model_kinds), {k: _optional(v) for k, v in pred.family_probabilities.items()},
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
