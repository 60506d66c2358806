"""Face-track clips: which frames of a video, cut with which region, make each person's clips.

``plan_track_clips(boxes_by_frame, frame_shape)`` links the faces of the sampled frames into tracks
(``faces.tracks.link_faces``, whose own rule already drops detector false positives seen for a moment)
and plans the clips of every track:

* a track spans the video frames from its first to its last face; a span shorter than ``min_frames``
  gives no clip (the DFDC "Medics" system: 30 frames);
* a longer span is cut into consecutive clips of ``max_frames`` (default 100) video frames, so no
  footage is lost and every clip fits a fixed chunk length; a remainder shorter than ``min_frames``
  is left out;
* a clip takes every ``every``-th frame of its span (1: every frame);
* its region covers the whole clip: the union of the track's boxes from the last sampled frame at or
  before its start to the first at or after its end, plus the 1/3 crop margin
  (``core.geometry.region_box``), so the face stays inside while it moves.

The plan depends on the boxes and the frame size only: the fakes of an original are cut with their
original's plan (same frames, same region), so a fake's clip differs from its original's only where
the fake changed the video.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.geometry import face_to_model_input, region_box
from faces.tracks import link_faces

DEFAULT_MIN_FRAMES = 30
DEFAULT_MAX_FRAMES = 100


@dataclass(frozen=True)
class ClipOptions:
    min_frames: int = DEFAULT_MIN_FRAMES  # video frames a track (and a clip) must span
    max_frames: int = DEFAULT_MAX_FRAMES  # video frames one clip spans at most
    every: int = 1  # a clip keeps every this-th frame of its span

    def __post_init__(self):
        if self.min_frames < 1:
            raise ValueError(f"--clip-min-frames {self.min_frames}: must be at least 1")
        if self.max_frames < self.min_frames:
            raise ValueError(f"--clip-max-frames {self.max_frames}: must be at least --clip-min-frames "
                             f"({self.min_frames})")
        if self.every < 1:
            raise ValueError(f"--clip-every {self.every}: must be at least 1 (1: every frame)")


@dataclass(frozen=True)
class TrackClip:
    """One planned clip: ``name`` is ``<person>_<chunk>`` (its file name without ``.mp4``)."""

    person: int
    chunk: int
    frames: tuple[int, ...]
    region: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    track_span: tuple[int, int]  # first and last frame with a face of the whole track

    @property
    def name(self) -> str:
        return f"{self.person}_{self.chunk}"


@dataclass(frozen=True)
class ShortTrack:
    """A track that gave no clip: it spans fewer than ``min_frames`` video frames."""

    person: int
    span: tuple[int, int]


def tracks_of(boxes_by_frame: Mapping[int, Sequence | None]) -> dict[int, list[tuple[int, np.ndarray]]]:
    """``{person: [(frame, box), ...] in frame order}`` by ``link_faces`` (dropped faces left out)."""
    frames, boxes = [], []
    for frame, faces in sorted(boxes_by_frame.items()):
        for box in faces or []:
            frames.append(int(frame))
            boxes.append(np.asarray(box, dtype=np.float64)[:4])
    if not frames:
        return {}
    people = link_faces(frames, np.stack(boxes), n_frames=len(boxes_by_frame))
    tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
    for frame, box, person in zip(frames, boxes, people):
        if person >= 0:
            tracks.setdefault(int(person), []).append((frame, box))
    return tracks


def _chunk_region(track: list[tuple[int, np.ndarray]], start: int, end: int,
                  frame_shape: Sequence[int]) -> tuple[int, int, int, int]:
    """The region of the clip ``start ... end``: every box of the track bracketing that span."""
    sampled = [frame for frame, _ in track]
    first = max(f for f in sampled if f <= start)
    last = min(f for f in sampled if f >= end)
    return region_box([box for frame, box in track if first <= frame <= last], frame_shape)


def person_clips(person: int, track: Sequence[tuple[int, np.ndarray]], frame_shape: Sequence[int],
                 options: ClipOptions | None = None) -> list[TrackClip]:
    """The clips of one track (``[(frame, box), ...]`` in frame order), in time order; none when its span is
    shorter than ``min_frames``. The rule of the module docstring, for a track linked elsewhere (the
    predictor links its own sampled frames' faces)."""
    options = options or ClipOptions()
    span = (int(track[0][0]), int(track[-1][0]))
    clips: list[TrackClip] = []
    if span[1] - span[0] + 1 < options.min_frames:
        return clips
    track = [(int(frame), np.asarray(box, dtype=np.float64)[:4]) for frame, box in track]
    for chunk, start in enumerate(range(span[0], span[1] + 1, options.max_frames)):
        end = min(start + options.max_frames - 1, span[1])
        if end - start + 1 < options.min_frames:
            break  # the remainder of a long track
        clips.append(TrackClip(person, chunk, tuple(range(start, end + 1, options.every)),
                               _chunk_region(track, start, end, frame_shape), span))
    return clips


def plan_track_clips(boxes_by_frame: Mapping[int, Sequence | None], frame_shape: Sequence[int],
                     options: ClipOptions | None = None) -> tuple[list[TrackClip], list[ShortTrack]]:
    """The clips of every track long enough, in person then time order, and the tracks too short.

    ``boxes_by_frame``: ``{frame: [[x1, y1, x2, y2, ...], ...] | None}`` (a boxes file); ``frame_shape``:
    ``(height, width, ...)`` of the video's frames.
    """
    options = options or ClipOptions()
    clips: list[TrackClip] = []
    short: list[ShortTrack] = []
    for person, track in sorted(tracks_of(boxes_by_frame).items()):
        mine = person_clips(person, track, frame_shape, options)
        if not mine:
            short.append(ShortTrack(person, (track[0][0], track[-1][0])))
        clips += mine
    return clips, short


def cut_clip_frame(frame: np.ndarray, region: Sequence[int], side_px: int) -> np.ndarray:
    """One frame of a clip: ``region`` (x1, y1, x2, y2) cut from the frame and brought to ``side_px`` by the
    classifier's geometry (isotropic resize, zero padding to a square; ``core.geometry.face_to_model_input``)."""
    x1, y1, x2, y2 = region
    return face_to_model_input(frame[y1:y2, x1:x2], side_px)
