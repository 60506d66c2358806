"""Face-track clips (MP4) of each original and, cut with the same region and frames, of each of its fakes
-> ``clips/<video>/<person>_<chunk>.mp4`` and ``clips/<video>/clips.json``.

The original's boxes (stage 1) are linked into tracks; every track spanning at least
``--clip-min-frames`` video frames gives clips of at most ``--clip-max-frames`` frames, each cut with one
region covering the track's boxes (plus the 1/3 crop margin) from every ``--clip-every``-th frame and
resized to ``--clip-size`` px (see ``faces.track_clips``). The fakes get the same clips, frame for frame:
a fake's clip differs from its original's only on the face. ``clips.json`` lists each clip's frames,
region and track, the tracks too short for a clip, and the clips a damaged video could not complete.

One work item is an original with all its fakes; each video is decoded once. Opt-in (the 2D recipe
does not read clips): ``./preprocess_data.sh DATA_ROOT --clips`` or

    python -m preprocessing.extract_clips DATA_ROOT [--clip-min-frames 30] [--clip-max-frames 100]
        [--clip-every 1] [--clip-size 128] [--clip-crf 10]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.clips import (
    CLIP_CODEC,
    CLIP_PIXEL_FORMAT,
    CLIPS_INDEX_FORMAT,
    DEFAULT_CRF,
    check_crf,
    read_clip,
    write_clip,
)
from core.files import write_json_atomic
from core.geometry import pad_to_original
from core.video import DecodeCounts, VideoInfo, iter_frames, probe_video
from datasets.dfdc import LayoutProblem, VideoEntry
from datasets.layout import DataLayout
from faces.track_clips import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MIN_FRAMES,
    ClipOptions,
    ShortTrack,
    TrackClip,
    cut_clip_frame,
    plan_track_clips,
)
from preprocessing.detect_original_faces import load_boxes
from preprocessing.extract_crops import fake_offset, group_by_original
from preprocessing.runner import (
    ItemError,
    ItemResult,
    Stage,
    WorkItem,
    layout_of,
    run_cli,
    run_stage,
    stage_parser,
)

STAGE_NAME = "extract_clips"
# 128 px: room for the random 112 px crops the 3D models train on (112: the input side of the torchvision
# video models' Kinetics weights and of the Medics' smaller models), and a side at which libx264 writes
# the same bytes on every run (core.clips); 224 px for the larger models (see docs/preprocessing.md)
DEFAULT_SIDE_PX = 128
MIN_SIDE_PX = 16
OPTION_NAMES = ("clip_min_frames", "clip_max_frames", "clip_every", "clip_size", "clip_crf")


def clip_stage_options(min_frames: int = DEFAULT_MIN_FRAMES, max_frames: int = DEFAULT_MAX_FRAMES, every: int = 1,
                       size: int = DEFAULT_SIDE_PX, crf: int = DEFAULT_CRF) -> dict:
    """The stage's options, checked (ValueError naming the option)."""
    ClipOptions(int(min_frames), int(max_frames), int(every))
    if int(size) < MIN_SIDE_PX or int(size) % 2:
        raise ValueError(f"--clip-size {size}: must be an even number of pixels >= {MIN_SIDE_PX} (e.g. 128 or 224)")
    return {"clip_min_frames": int(min_frames), "clip_max_frames": int(max_frames), "clip_every": int(every),
            "clip_size": int(size), "clip_crf": check_crf(crf)}


def _plan_options(options: dict) -> ClipOptions:
    return ClipOptions(options["clip_min_frames"], options["clip_max_frames"], options["clip_every"])


def first_frame_shape(path: Path) -> tuple[int, ...]:
    """The shape of a video's frames as decoded (the boxes were found on these frames)."""
    for _, frame in iter_frames(path, [0]):
        return frame.shape
    raise ItemError(f"{path}: its first frame does not decode; replace the file")


def cut_video_clips(layout: DataLayout, video: VideoEntry, clips: list[TrackClip], frame_shape: tuple[int, ...],
                    options: dict, fps: float, counts: DecodeCounts | None = None,
                    offset: tuple[int, int] = (0, 0)) -> list[TrackClip]:
    """Cut and write ``clips`` from one video in one decoding pass; returns the clips written (a clip whose
    frames do not all decode is left out). ``offset``: where a centre-cropped fake's frames sit in its
    original's (``alignment``). ItemError when the frames do not fit ``frame_shape``."""
    frames_of: dict[int, list[int]] = {}
    for position, clip in enumerate(clips):
        for frame in clip.frames:
            frames_of.setdefault(frame, []).append(position)
    pending: dict[int, list[np.ndarray]] = {}
    written: list[TrackClip] = []
    side = options["clip_size"]
    for index, frame in iter_frames(video.path, frames_of.keys(), counts=counts):
        if frame.shape[0] + offset[1] > frame_shape[0] or frame.shape[1] + offset[0] > frame_shape[1]:
            raise ItemError(f"{video.path}: its frames are {frame.shape[1]}x{frame.shape[0]} but its original's are "
                            f"{frame_shape[1]}x{frame_shape[0]}: not frame-aligned with it, no clip cut")
        frame = pad_to_original(frame, frame_shape, offset)
        for position in frames_of[index]:
            clip = clips[position]
            if len(pending.setdefault(position, [])) != clip.frames.index(index):
                continue  # an earlier frame of this clip did not decode: the clip stays incomplete
            pending[position].append(cut_clip_frame(frame, clip.region, side))
            if index == clip.frames[-1]:
                write_clip(layout.clip_path(video.video_id, clip.name), pending.pop(position),
                           fps / options["clip_every"], options["clip_crf"], root=layout.clips_root)
                written.append(clip)
    return sorted(written, key=lambda clip: (clip.person, clip.chunk))


def _clip_record(clip: TrackClip, diff: float | None) -> dict:
    return {"file": f"{clip.name}.mp4", "person": clip.person, "chunk": clip.chunk, "frames": list(clip.frames),
            "region": list(clip.region), "track_span": list(clip.track_span), "diff_to_original": diff}


# a changed face covers far more than the top 5% of a clip's pixels (it fills about a third of the clip);
# a codec's noise spreads over all of them
DIFF_PERCENTILE = 95


def diff_to_original(layout: DataLayout, fake_id: str, original_id: str, name: str) -> float | None:
    """How much a fake's clip differs from its original's, decoded: the DIFF_PERCENTILE-th percentile over
    the pixels of their absolute difference averaged over the frames and colours (grey levels). About the
    codecs' noise (~3-6 on FF++ c23) for a person the fake left alone (a bystander, the other person of a
    two-person video), far more (~20 on FF++ Deepfakes) for a swapped face. None when the original has no
    such clip."""
    original = layout.clip_path(original_id, name)
    if not original.is_file():
        return None
    fake_frames = read_clip(layout.clip_path(fake_id, name)).astype(np.int16)
    mean_diff = np.abs(fake_frames - read_clip(original)).mean(axis=(0, 3))
    return round(float(np.percentile(mean_diff, DIFF_PERCENTILE)), 2)


def clips_index(layout: DataLayout, video: VideoEntry, original_id: str, planned: list[TrackClip],
                written: list[TrackClip], short: list[ShortTrack], frame_shape: tuple[int, ...], fps: float,
                options: dict, not_aligned: str | None = None, diffs: dict[str, float | None] | None = None,
                offset: tuple[int, int] | None = (0, 0)) -> dict:
    """What ``clips.json`` holds for one video (its format: docs/preprocessing.md); ``planned``: the clips
    tried, ``not_aligned``: why none was tried on a fake, ``diffs``: each clip's ``diff_to_original``,
    ``offset``: where the video's frames sit in its original's (a centre-cropped fake)."""
    done = {clip.name for clip in written}
    return {"format": CLIPS_INDEX_FORMAT, "video": video.video_id, "original": original_id,
            "boxes": str(layout.boxes_path(original_id).relative_to(layout.root)),
            "frame_size": [int(frame_shape[1]), int(frame_shape[0])], "fps": fps / options["clip_every"],
            "size_px": options["clip_size"], "every": options["clip_every"],
            "codec": f"{CLIP_CODEC} {CLIP_PIXEL_FORMAT} crf {options['clip_crf']}",
            "min_frames": options["clip_min_frames"], "max_frames": options["clip_max_frames"],
            "clips": [_clip_record(clip, (diffs or {}).get(clip.name)) for clip in written],
            "short_tracks": [{"person": track.person, "span": list(track.span)} for track in short],
            "incomplete": [clip.name for clip in planned if clip.name not in done], "not_aligned": not_aligned,
            "offset_px": list(offset) if offset is not None else None}


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    return group_by_original(entries), problems


@dataclass(frozen=True)
class _ItemPlan:
    """What every video of an item is cut with: the original's clips, frames and header."""

    clips: list[TrackClip]
    short: list[ShortTrack]
    frame_shape: tuple[int, ...]
    original: VideoInfo


def alignment(video: VideoEntry, info: VideoInfo, original: VideoInfo) -> tuple[tuple[int, int] | None, str | None]:
    """Where a fake's frames sit in its original's, ``(left, top)`` px (``extract_crops.fake_offset``: the same
    size, or a centre crop of it, padded back); else ``(None, why)``: its clips would cut other pixels than
    its original's. A fake with fewer or more frames is aligned on the frames both have."""
    offset, problem = fake_offset(video, info, original, "no clip is cut")
    return offset, (f"{problem}; its clips.json lists none" if problem else None)


def _video_clips(layout: DataLayout, video: VideoEntry, original_id: str, plan: _ItemPlan, options: dict,
                 warnings: list[str]) -> list[Path]:
    """One video's clips and index; returns the files written (warnings appended to ``warnings``)."""
    clips, offset, problem = plan.clips, (0, 0), None
    if video.video_id != original_id:
        offset, problem = alignment(video, probe_video(video.path), plan.original)
    if problem:
        warnings.append(problem)
        clips = []
    counts = DecodeCounts()
    written = cut_video_clips(layout, video, clips, plan.frame_shape, options, plan.original.fps, counts,
                              offset) if clips else []
    partial = counts.partial_warning(video.path)  # a shorter fake's missing clips are listed, not warned of
    if partial:
        warnings.append(partial)
    diffs = {clip.name: diff_to_original(layout, video.video_id, original_id, clip.name)
             for clip in written if video.video_id != original_id}
    index_path = layout.clips_index_path(video.video_id)
    write_json_atomic(index_path, clips_index(layout, video, original_id, clips, written, plan.short, plan.frame_shape,
                                              plan.original.fps, options, problem, diffs, offset), root=layout.clips_root)
    return [layout.clip_path(video.video_id, clip.name) for clip in written] + [index_path]


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> ItemResult:
    original = item.videos[0]
    frame_shape = first_frame_shape(original.path)
    clips, short = plan_track_clips(load_boxes(layout, original.video_id), frame_shape, _plan_options(options))
    plan = _ItemPlan(clips, short, frame_shape, probe_video(original.path))
    warnings: list[str] = []
    if not clips:
        longest = max((track.span[1] - track.span[0] + 1 for track in short), default=0)
        warnings.append(f"{layout.boxes_path(original.video_id)}: no face track spans --clip-min-frames "
                        f"{options['clip_min_frames']} frames (the longest spans {longest}): no clip for "
                        f"{original.video_id} and its fakes (each gets an empty clips.json)")
    written: list[Path] = []
    errors: list[str] = []
    for video in item.videos:
        try:
            written += _video_clips(layout, video, original.video_id, plan, options, warnings)
        except Exception as exc:  # one bad fake must not cost the original and the other fakes
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    return ItemResult(written, warnings)


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [layout.boxes_path(item.key)] + [video.path for video in item.videos]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.clips_dir(video.video_id) for video in item.videos]


def _output_dirs(layout: DataLayout) -> list[Path]:
    return [layout.clips_root]


STAGE = Stage(STAGE_NAME, _list_items, _process, option_names=OPTION_NAMES, inputs=_inputs,
              item_outputs=_item_outputs, output_dirs=_output_dirs)


def extract_clips(data_root, workers: int | None = None, shard=None, progress: bool = True, **clip_options):
    """The clips stage over DATA_ROOT (``clip_options``: ``clip_stage_options``'s arguments); returns the
    StageSummary."""
    return run_stage(STAGE, data_root, clip_stage_options(**clip_options), workers, shard, progress)


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clip-min-frames", type=int, default=DEFAULT_MIN_FRAMES,
                        help=f"video frames a face track must span to give a clip (default {DEFAULT_MIN_FRAMES})")
    parser.add_argument("--clip-max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                        help=f"video frames one clip spans at most; a longer track gives several clips "
                             f"(default {DEFAULT_MAX_FRAMES})")
    parser.add_argument("--clip-every", type=int, default=1, help="keep every N-th frame of a clip's span "
                                                                  "(default 1: every frame)")
    parser.add_argument("--clip-size", type=int, default=DEFAULT_SIDE_PX,
                        help=f"side of the square clip frames in px (default {DEFAULT_SIDE_PX})")
    parser.add_argument("--clip-crf", type=int, default=DEFAULT_CRF,
                        help=f"H.264 quality, 0 (near-lossless, ~6x larger) ... 51 (default {DEFAULT_CRF})")


def clip_arguments(args: argparse.Namespace) -> dict:
    """The parsed clip options as ``extract_clips``' keyword arguments."""
    return {"min_frames": args.clip_min_frames, "max_frames": args.clip_max_frames, "every": args.clip_every,
            "size": args.clip_size, "crf": args.clip_crf}


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    add_clip_arguments(parser)
    args = parser.parse_args(argv)
    return run_cli(lambda: extract_clips(layout_of(args), args.workers, args.shard, not args.no_progress,
                                         **clip_arguments(args)))


if __name__ == "__main__":
    raise SystemExit(main())
