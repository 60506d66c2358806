"""How models of different families make one person's score: two registries chosen by the predictor's options.

* :data:`FAMILY_KINDS`: what a model scores, by the layout of its input spec. ``2d``: image models
  (``NCHW``: ``classifier2d``) score each face crop of the sampled frames, a person's score is the
  ``--strategy`` over its faces; ``3d``: clip models (``NCTHW``: ``video_resnet``, ``inflated3d``) score
  chunks of the person's face-track clip, its score is the ``--strategy`` over its chunks. The models of
  one kind are combined by ``--combine``.
* :data:`FAMILY_POOLS` (``--family-pool``): the kinds' scores of one person -> the person's score, weighted
  by ``--family-weights`` (default ``2d=0.5,3d=0.5``: the DFDC "Medics" pooled their 2D model and their
  3D models 50:50). A kind without a score for a person (no clip model loaded, or a track too short for
  one chunk) is left out and the other weights renormalised.

The video rule (``--aggregate``) then makes the video's score of the persons' pooled scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.input_spec import InputSpec
from core.registry import Registry


@dataclass
class ModelItems:
    """What one model scored in a video: per item (a face, or a clip chunk) its fake probability, its person
    (``-1``: a face of a dropped short track) and, for chunks, the first and last video frame."""

    scores: np.ndarray
    persons: np.ndarray
    frames: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class VideoInputs:
    """What a kind's scorer gets of one video: its path, its faces (``prediction.predictor.VideoFaces``) and
    each face's person."""

    path: Path
    faces: Any
    face_persons: np.ndarray


@dataclass(frozen=True)
class FamilyKind:
    """A kind of model: the input layout it takes, what it scores (in words, for the report), the memory
    format its weights take with ``--channels-last``, and ``score(predictor, inputs, rows)``: the
    ``ModelItems`` of the predictor's models ``rows`` (all of this kind) on one video."""

    layout: str
    items: str
    channels_last: torch.memory_format
    score: Callable[[Any, VideoInputs, list[int]], list[ModelItems]]


def score_faces(predictor, inputs: VideoInputs, rows: list[int]) -> list[ModelItems]:
    """Image models: every face crop of the sampled frames (``VideoPredictor.score_faces``)."""
    scores = predictor.score_faces(inputs.faces.crops, rows)
    return [ModelItems(row_scores, inputs.face_persons) for row_scores in scores]


def score_chunks(predictor, inputs: VideoInputs, rows: list[int]) -> list[ModelItems]:
    """Clip models: chunks of each person's face-track clip (``VideoPredictor.score_chunks``)."""
    return predictor.score_chunks(inputs, rows)


FAMILY_KINDS: Registry[FamilyKind] = Registry("model family kind")
IMAGE_KIND = "2d"  # the kind of image models (stored face scores are theirs)
FAMILY_KINDS.register(IMAGE_KIND, FamilyKind("NCHW", "face crops", torch.channels_last, score_faces))
# channels-last for 5-D weights is torch's channels_last_3d; not measured faster on the CPU, so left contiguous
FAMILY_KINDS.register("3d", FamilyKind("NCTHW", "clip chunks", torch.contiguous_format, score_chunks))


def kind_of(spec: InputSpec) -> str:
    """The name of the kind that takes inputs of ``spec``'s layout; ValueError when none does."""
    for name, kind in FAMILY_KINDS.items():
        if kind.layout == spec.layout:
            return name
    raise ValueError(f"no model family kind takes {spec.layout} inputs; known: "
                     + ", ".join(f"{n} ({k.layout})" for n, k in FAMILY_KINDS.items()))


# ---- pooling the kinds' scores of one person ----------------------------------------------------------

FamilyPool = Callable[[np.ndarray, np.ndarray], float]  # (scores, weights summing to 1) -> score
FAMILY_POOLS: Registry[FamilyPool] = Registry("family pooling")
POOL_CLIP = 1e-7  # keeps the log-odds finite for saturated scores


@FAMILY_POOLS.register("mean")
def weighted_mean(scores: np.ndarray, weights: np.ndarray) -> float:
    """The weighted arithmetic mean of the probabilities (the Medics' 50:50 blend)."""
    return float(np.dot(weights, scores))


@FAMILY_POOLS.register("geometric")
def weighted_logit_mean(scores: np.ndarray, weights: np.ndarray) -> float:
    """The weighted mean of the log-odds, back to a probability (a confident kind counts for more)."""
    p = np.clip(scores, POOL_CLIP, 1 - POOL_CLIP)
    logit = float(np.dot(weights, np.log(p) - np.log1p(-p)))
    return float(1.0 / (1.0 + np.exp(-logit)))


def parse_family_weights(text: str) -> tuple[tuple[str, float], ...]:
    """``"2d=0.5,3d=0.5"`` -> ``(("2d", 0.5), ("3d", 0.5))``; ValueError naming what is wrong."""
    pairs = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not np.isfinite(weight):
            raise ValueError(f"family weight {part!r}: expected KIND=WEIGHT, e.g. 2d=0.5,3d=0.5")
        pairs.append((name.strip(), weight))
    return check_family_weights(tuple(pairs))


def check_family_weights(pairs) -> tuple[tuple[str, float], ...]:
    """``pairs`` ((kind, weight), ...) checked: known kinds (``FAMILY_KINDS``), each once, weights >= 0."""
    pairs = tuple((str(name), float(weight)) for name, weight in (pairs.items() if isinstance(pairs, Mapping)
                                                                  else pairs))
    names = [name for name, _ in pairs]
    unknown = [name for name in names if name not in FAMILY_KINDS]
    if unknown:
        raise ValueError(f"family weights name unknown kind(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(FAMILY_KINDS.names())} (image models: 2d, clip models: 3d)")
    if len(set(names)) != len(names):
        raise ValueError(f"family weights name a kind twice: {names}")
    if any(weight < 0 or not np.isfinite(weight) for _, weight in pairs):
        raise ValueError(f"family weights must be finite and >= 0, got {dict(pairs)}")
    return pairs


def pool_families(scores: Mapping[str, float | None], weights: Mapping[str, float], pool: str = "mean") -> float | None:
    """One person's (or video's) score from its kinds' scores: the kinds with a score and a positive weight,
    their weights renormalised to sum 1, pooled by ``FAMILY_POOLS[pool]``; None when no kind is left."""
    present = [(kind, score) for kind, score in scores.items() if score is not None and weights.get(kind, 0.0) > 0]
    if not present:
        return None
    w = np.array([weights[kind] for kind, _ in present], dtype=np.float64)
    return FAMILY_POOLS.get(pool)(np.array([s for _, s in present], dtype=np.float64), w / w.sum())
