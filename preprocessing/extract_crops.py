"""Stage 2: face crops (PNG) of every ``--every``-th frame of each original and of each fake made
from it, all cut with the original's boxes plus 1/3 margin -> ``crops/<video>/<frame>_<face>.png``.

One work item is an original with all its fakes; each video is decoded once. Redoing an item (new
boxes, a changed video, another ``--every``) rebuilds the crop folders of all its videos.

    python -m preprocessing.extract_crops DATA_ROOT [--every 10]
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from core.files import atomic_path
from core.geometry import crop_face
from core.video import DecodeCounts, iter_frames
from datasets.layout import DataLayout
from datasets.readers import LayoutProblem, VideoEntry
from preprocessing.detect_original_faces import DEFAULT_EVERY, load_boxes
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

STAGE_NAME = "extract_crops"
# fixed so that reruns write identical bytes (3: cv2's default, a good speed/size balance)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def write_png_atomic(target: Path, image: np.ndarray, rgb: bool = True, root: Path | None = None) -> None:
    """Write an RGB (or grey, ``rgb=False``) uint8 image as PNG via temp + rename (``root``: the output
    folder the target must stay inside)."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if rgb and image.ndim == 3 else image
    with atomic_path(target, root) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(pixels), PNG_PARAMS):
            raise OSError(f"cannot write {target} (disk full or folder not writable?)")


def group_by_original(entries: list[VideoEntry]) -> list[WorkItem]:
    """One item per original: the original first, then its fakes (sorted by id)."""
    fakes: dict[str, list[VideoEntry]] = defaultdict(list)
    for entry in entries:
        if entry.is_fake and entry.original_id:
            fakes[entry.original_id].append(entry)
    return [WorkItem(e.video_id, (e, *sorted(fakes[e.video_id], key=lambda f: f.video_id)))
            for e in entries if not e.is_fake]


def crop_frames(boxes: dict[int, list | None], every: int) -> dict[int, list]:
    """The frames stage 2 cuts: multiples of ``every`` that have at least one box."""
    return {frame: faces for frame, faces in sorted(boxes.items()) if faces and frame % every == 0}


def crops_of(layout: DataLayout, video_id: str) -> list[tuple[int, int]]:
    """(frame, face) of every crop of a video, for the stages that read them; an ItemError when there
    is none (a later stage never finishes an item with nothing to read)."""
    crops = layout.crop_files(video_id)
    if not crops:
        raise ItemError(f"{layout.crops_dir(video_id)} holds no crops: run extract_crops first (or see "
                        f"{layout.log_path(STAGE_NAME)} for why this video has none)")
    return crops


def extract_video_crops(layout: DataLayout, video: VideoEntry, frames: dict[int, list],
                        counts: DecodeCounts | None = None) -> list[Path]:
    """Cut every face of ``frames`` out of one video; returns the files written (``counts``: filled
    in with how much of the video decoded)."""
    written: list[Path] = []
    for index, frame in iter_frames(video.path, frames.keys(), counts=counts):
        for face, box in enumerate(frames[index]):
            crop = crop_face(frame, box)
            if crop.size == 0:  # a box entirely outside this frame
                continue
            target = layout.crop_path(video.video_id, index, face)
            write_png_atomic(target, crop, root=layout.crops_root)
            written.append(target)
    return written


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    return group_by_original(entries), problems


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> ItemResult:
    original = item.videos[0]
    every = int(options.get("every", DEFAULT_EVERY))
    frames = crop_frames(load_boxes(layout, original.video_id), every)
    if not frames:
        raise ItemError(f"{layout.boxes_path(original.video_id)} has no face on any frame that is a multiple of "
                        f"--every {every}: nothing to crop (run detect_original_faces with the same --every)")
    written: list[Path] = []
    errors: list[str] = []
    warnings: list[str] = []
    for video in item.videos:
        counts = DecodeCounts()
        try:
            crops = extract_video_crops(layout, video, frames, counts)
            if not crops:
                raise ItemError(f"{video.path}: no crop could be cut: none of the frames {sorted(frames)} decodes "
                                f"({counts.decoded_frames} of {counts.header_frames} frames do)")
            written += crops
            partial = counts.partial_warning(video.path)
            if partial:
                warnings.append(partial)
        except Exception as exc:  # one bad fake must not cost the original and the other fakes
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    return ItemResult(written, warnings)


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [layout.boxes_path(item.key)] + [video.path for video in item.videos]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.crops_dir(video.video_id) for video in item.videos]


def _output_dirs(layout: DataLayout) -> list[Path]:
    return [layout.crops_root]


STAGE = Stage(STAGE_NAME, _list_items, _process, option_names=("every",), inputs=_inputs,
              item_outputs=_item_outputs, output_dirs=_output_dirs)


def extract_crops(data_root, workers: int | None = None, shard=None, progress: bool = True,
                  every: int = DEFAULT_EVERY):
    """Stage 2 over DATA_ROOT; returns the StageSummary."""
    if int(every) < 1:
        raise ValueError(f"--every {every}: must be >= 1")
    return run_stage(STAGE, data_root, {"every": int(every)}, workers, shard, progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY, help="crop frames 0, N, 2N, ... (default 10)")
    args = parser.parse_args(argv)
    return run_cli(lambda: extract_crops(layout_of(args), args.workers, args.shard, not args.no_progress,
                                         args.every))


if __name__ == "__main__":
    raise SystemExit(main())
