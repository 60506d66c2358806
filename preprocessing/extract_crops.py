"""Stage 2: face crops (PNG) of every ``--every``-th frame of each original and of each fake made
from it, all cut with the original's boxes plus 1/3 margin -> ``crops/<video>/<frame>_<face>.png``.

One work item is an original with all its fakes; each video is decoded once. Redoing an item (new
boxes, a changed video, another ``--every``) rebuilds the crop folders of all its videos.

A fake a little smaller than its original (FF++ Face2Face and NeuralTextures: the original cropped about
its centre, ``core.geometry.centre_crop_offset``) is padded back to its original's size first, so that its
crops line up with the original's pixel for pixel; a fake of any other size gets no crop and a warning.

    python -m preprocessing.extract_crops DATA_ROOT [--every 10]
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from core.files import atomic_path
from core.geometry import centre_crop_offset, crop_face, pad_to_original
from core.video import DecodeCounts, VideoInfo, VideoReadError, iter_frames, probe_video
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
# 2: a centre-cropped fake is padded back to its original's size, a fake of another size is left out
VERSION = 2
# what stage 2 does with a fake of another size than its original's
LEFT_OUT = ("its original's boxes would cut other pixels from it, so no crop of it is cut and it is left out of "
            "the diffs and of training")
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


def fake_offset(fake: VideoEntry, fake_info: VideoInfo, original_info: VideoInfo,
                left_out: str) -> tuple[tuple[int, int] | None, str | None]:
    """Where a fake's frames sit in its original's: ``((left, top), None)`` px (``centre_crop_offset``), or
    ``(None, why)`` for a fake of another size, the warning naming both sizes, what the stage leaves out
    (``left_out``) and what to check."""
    offset = centre_crop_offset((fake_info.height, fake_info.width), (original_info.height, original_info.width))
    if offset is not None:
        return offset, None
    metadata = f"{fake.part}'s metadata.json" if fake.part else "the dataset's metadata"
    return None, (f"{fake.path}: {fake_info.width}x{fake_info.height}, but its original {fake.original_id} is "
                  f"{original_info.width}x{original_info.height}, and not a centre crop of it: {left_out} (check "
                  f"the 'original' of {fake.video_id} in {metadata})")


def same_frame_size_as_version_1(layout: DataLayout, item: WorkItem, version: int) -> bool:
    """Whether this version of stages 2 and 4 writes for ``item`` what ``version`` wrote: from version 1,
    when every fake has its original's frame size (version 2 changed only the fakes of another size)."""
    if version != 1:
        return False
    if len(item.videos) == 1:  # an original without fakes
        return True
    try:
        sizes = {(info.width, info.height) for info in (probe_video(video.path) for video in item.videos)}
    except VideoReadError:  # the item is redone and reports it
        return False
    return len(sizes) == 1


def extract_video_crops(layout: DataLayout, video: VideoEntry, frames: dict[int, list],
                        counts: DecodeCounts | None = None, original_shape: tuple[int, int] | None = None,
                        offset: tuple[int, int] = (0, 0)) -> list[Path]:
    """Cut every face of ``frames`` out of one video; returns the files written (``counts``: filled
    in with how much of the video decoded). A fake's frames are first put where they sit in its
    original's frames of ``original_shape`` (height, width) at ``offset`` (``fake_offset``)."""
    written: list[Path] = []
    for index, frame in iter_frames(video.path, frames.keys(), counts=counts):
        if original_shape is not None:
            frame = _in_original(video, frame, original_shape, offset)
        for face, box in enumerate(frames[index]):
            crop = crop_face(frame, box)
            if crop.size == 0:  # a box entirely outside this frame
                continue
            target = layout.crop_path(video.video_id, index, face)
            write_png_atomic(target, crop, root=layout.crops_root)
            written.append(target)
    return written


def _in_original(video: VideoEntry, frame: np.ndarray, original_shape: tuple[int, int],
                 offset: tuple[int, int]) -> np.ndarray:
    try:
        return pad_to_original(frame, original_shape, offset)
    except ValueError as exc:  # a frame of another size than the video's header states
        raise ItemError(f"{video.path}: {exc}, where its original's boxes would cut it: no crop of it is kept, "
                        f"replace the file") from None


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
    original_info = probe_original(original) if len(item.videos) > 1 else None
    written: list[Path] = []
    errors: list[str] = []
    warnings: list[str] = []
    for video in item.videos:
        counts = DecodeCounts()
        try:
            original_shape, offset = None, (0, 0)
            if video is not original:
                offset, problem = fake_offset(video, probe_video(video.path), original_info, LEFT_OUT)
                if problem:
                    warnings.append(problem)
                    continue
                original_shape = (original_info.height, original_info.width)
            crops = extract_video_crops(layout, video, frames, counts, original_shape, offset)
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


def probe_original(original: VideoEntry) -> VideoInfo:
    """The original's header (its fakes are placed in its frames); an ItemError when it cannot be opened
    (its fakes are of no use without it)."""
    try:
        return probe_video(original.path)
    except VideoReadError as exc:
        raise ItemError(str(exc)) from None


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [layout.boxes_path(item.key)] + [video.path for video in item.videos]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.crops_dir(video.video_id) for video in item.videos]


def _output_dirs(layout: DataLayout) -> list[Path]:
    return [layout.crops_root]


STAGE = Stage(STAGE_NAME, _list_items, _process, option_names=("every",), inputs=_inputs,
              item_outputs=_item_outputs, output_dirs=_output_dirs, version=VERSION,
              unchanged_since=same_frame_size_as_version_1)


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
