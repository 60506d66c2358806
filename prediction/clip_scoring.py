"""Clip (3D) models on a video's persons: chunks of each person's face-track clip, cut as the clips stage cuts.

The predictor's sampled frames give each person a track (``faces.tracks``). For every clip model:

1. the track's clips are planned by ``faces.track_clips.person_clips``, the rule of the clips stage: clips of
   at most ``--clip-max-frames`` video frames, each with ONE region (the union of the track's boxes around
   it plus the 1/3 crop margin), taking every ``frame_step``-th frame (the model's input spec);
2. each clip is divided into chunks of ``frames_per_clip`` consecutive clip frames; ``--clip-chunks`` of
   them, evenly spread over the person's chunks, are scored (a track spanning fewer frames than one chunk
   gets none: that person has no 3D score);
3. the chunks' frames are decoded in ONE pass over the video (``core.video.iter_frames``: every frame up to
   the last one wanted is grabbed, only the wanted ones converted; never a seek), each cut with its clip's
   region and brought to the clip side by the stage's geometry (``faces.track_clips.cut_clip_frame``): the
   side the model's clips were made at (its config's ``clip_size``, which training records from the
   clips), else the side its training crops were taken from; then the centred crop validation takes
   (config ``clip_crop``: resized to ``size / clip_crop``, the centred ``size`` square) and
   ``core.input_spec.place_clip`` give the model its input, as for a stored clip.

Only the cut regions are kept (a few KB per frame), never whole frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.geometry import centre_crop_clip, clip_full_side_px
from core.input_spec import InputSpec, place_clip, to_model_batch
from core.video import VideoReadError, iter_frames
from faces.track_clips import ClipOptions, cut_clip_frame, person_clips


@dataclass(frozen=True)
class ClipGeometry:
    """How a clip model's chunks are cut: what every model with the same geometry shares."""

    frames_per_clip: int
    frame_step: int  # video frames between consecutive frames of a chunk
    clip_side_px: int  # the side the region is resized to (the clips stage's --clip-size)

    @property
    def span_frames(self) -> int:
        """Video frames from a chunk's first frame to its last."""
        return (self.frames_per_clip - 1) * self.frame_step + 1


def clip_crop_share(config: dict) -> float:
    """The share of a clip's side a clip model's centred crop covers (config ``clip_crop``, which training
    writes into every checkpoint); 1 (the whole clip) for a config without it."""
    return float(config.get("clip_crop") or 1.0)


def clip_geometry(spec: InputSpec, config: dict) -> ClipGeometry:
    """A clip model's geometry: its spec's clip length and step, the side its training clips had (config
    ``clip_size``, recorded by training from the clips' ``clips.json``), else the side its training crops
    were taken from (``clip_full_side_px`` of its input side and ``clip_crop``)."""
    side = config.get("clip_size") or clip_full_side_px(spec.size_px, clip_crop_share(config))
    return ClipGeometry(spec.frames_per_clip, spec.frame_step, int(side))


@dataclass(frozen=True)
class ClipChunk:
    """One chunk of a person's clip: its video frames (``frames_per_clip`` of them) and its clip's region."""

    person: int
    frames: tuple[int, ...]
    region: tuple[int, int, int, int]


def evenly_chosen(n_items: int, n_wanted: int | None) -> list[int]:
    """``n_wanted`` indices spread evenly over ``range(n_items)`` (all of them when None or more)."""
    if n_wanted is None or n_wanted >= n_items:
        return list(range(n_items))
    return sorted(set(np.linspace(0, n_items - 1, n_wanted).round().astype(int).tolist()))


def plan_person_chunks(person: int, track: Sequence[tuple[int, np.ndarray]], frame_shape: Sequence[int],
                       geometry: ClipGeometry, max_frames: int, n_chunks: int | None) -> list[ClipChunk]:
    """The chunks of one person's track (``[(frame, box), ...]`` in frame order) a clip model scores."""
    span = geometry.span_frames
    options = ClipOptions(min_frames=span, max_frames=max(int(max_frames), span), every=geometry.frame_step)
    windows = [(clip, start) for clip in person_clips(person, track, frame_shape, options)
               for start in range(0, len(clip.frames) - geometry.frames_per_clip + 1, geometry.frames_per_clip)]
    return [ClipChunk(person, windows[i][0].frames[windows[i][1]:windows[i][1] + geometry.frames_per_clip],
                      windows[i][0].region) for i in evenly_chosen(len(windows), n_chunks)]


def plan_chunks(face_frames: np.ndarray, face_boxes: np.ndarray, face_persons: np.ndarray, frame_shape: Sequence[int],
                geometry: ClipGeometry, max_frames: int, n_chunks: int | None) -> list[ClipChunk]:
    """Every kept person's chunks (person order), from the faces of the sampled frames and their persons."""
    chunks: list[ClipChunk] = []
    for person in range(int(face_persons.max(initial=-1)) + 1):
        mine = np.flatnonzero(face_persons == person)
        track = [(int(face_frames[i]), face_boxes[i, :4]) for i in mine]
        if track:
            chunks += plan_person_chunks(person, track, frame_shape, geometry, max_frames, n_chunks)
    return chunks


def cut_chunks(path: str | os.PathLike, chunks_by_geometry: dict[ClipGeometry, list[ClipChunk]]
               ) -> dict[ClipGeometry, list[np.ndarray | None]]:
    """Per geometry, per chunk its cut frames ``(T, side, side, 3)`` uint8, or None when one of its frames
    did not decode; one decoding pass over the video for all of them."""
    wanted: dict[int, list[tuple[ClipGeometry, int]]] = {}
    for geometry, chunks in chunks_by_geometry.items():
        for position, chunk in enumerate(chunks):
            for frame in chunk.frames:
                wanted.setdefault(frame, []).append((geometry, position))
    cut: dict[tuple[ClipGeometry, int], list[np.ndarray]] = {}
    if wanted:
        try:
            for index, frame in iter_frames(path, wanted.keys()):
                for geometry, position in wanted[index]:
                    region = chunks_by_geometry[geometry][position].region
                    cut.setdefault((geometry, position), []).append(cut_clip_frame(frame, region, geometry.clip_side_px))
        except VideoReadError:
            pass  # the sampled frames decoded before: a file that fails now gives its chunks no score
    return {geometry: [np.stack(cut[(geometry, i)]) if len(cut.get((geometry, i), [])) == len(chunk.frames) else None
                       for i, chunk in enumerate(chunks)]
            for geometry, chunks in chunks_by_geometry.items()}


@torch.inference_mode()
def score_clips(model: torch.nn.Module, clips: Sequence[np.ndarray], spec: InputSpec, device, dtype,
                batch_size: int, tta: bool = False, crop_share: float = 1.0) -> np.ndarray:
    """Fake probability of each cut clip under one clip model: its centred crop as validation takes it
    (``crop_share`` < 1: ``core.geometry.centre_crop_clip``), ``place_clip`` to its input, then the model."""
    scores = np.zeros(len(clips), dtype=np.float64)
    if crop_share < 1:
        clips = [centre_crop_clip(clip, spec.size_px, crop_share) for clip in clips]
    placed = [place_clip(list(clip), spec) for clip in clips]
    for start in range(0, len(placed), batch_size):
        batch = to_model_batch(placed[start:start + batch_size], spec, device, dtype)
        probs = torch.sigmoid(model(batch).float()).squeeze(1)
        if tta:
            probs = (probs + torch.sigmoid(model(torch.flip(batch, dims=[4])).float()).squeeze(1)) / 2
        scores[start:start + len(probs)] = probs.cpu().double().numpy()
    return scores
