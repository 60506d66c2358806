"""Stage 1: face boxes of every REAL video -> ``boxes/<id>.json`` (fakes reuse their original's).

By default only the frames that stage 2 crops are detected (``--every``, default 10); ``--all-frames``
detects on every frame as the original recipe did. Frames are decoded by a reader thread while the
detector works on the previous batch, and the next video's decoding starts while this one is detected.

``--recipe original`` (the default) gives the original recipe's boxes: each frame halved with PIL, the
faces of a frame largest first, MTCNN on 32 frames per call; ``--recipe fast`` halves with OpenCV's
area filter, orders faces by score and sizes the batches for the device (8 frames on the CPU): cheaper,
with boxes a few pixels off the recipe's.

``--detector`` names the face detector (``faces.detectors.DETECTORS``; default and so far the only one:
``mtcnn``); the recipe's settings are MTCNN's, a detector reads those it understands.

    python -m preprocessing.detect_original_faces DATA_ROOT [--every 10 | --all-frames] [--scale 0.5|auto]
        [--recipe original|fast] [--detector mtcnn]
"""

from __future__ import annotations

import functools
import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.devices import resolve_device
from core.files import write_json_atomic
from core.video import DecodeCounts, VideoReadError, iter_frames
from datasets.layout import DataLayout
from datasets.readers import LayoutProblem
from faces.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    Detector,
    DetectorSettings,
    build_detector,
    check_detector,
)
from preprocessing.runner import (
    ItemError,
    ItemResult,
    Stage,
    WorkItem,
    layout_of,
    run_cli,
    run_stage,
    scale_arg,
    stage_parser,
)

STAGE_NAME = "detect_original_faces"
DEFAULT_EVERY = 10
# the recipe's detector input (half resolution): boxes identical to the original recipe's on the
# frames both detect; `auto` (faces.detector_scale) is faster on 1080p and finds smaller faces below 500 px
DEFAULT_SCALE = 0.5
_QUEUE_FRAMES = 32  # decoded frames held per video while the detector is busy
# detector settings of each recipe (DetectorSettings fields). The original's batches of 32 frames matter:
# MTCNN's float results depend on the batch; measured on three real clips, every 10th frame in batches of 32
# got the all-frames run's integer boxes on all 94 frames, in batches of 8 one 1080p box moved by 7 px
RECIPES: dict[str, dict] = {
    "original": {"resize": "pil", "face_order": "area", "batch_size": 32},
    "fast": {"resize": "cv2", "face_order": "score", "batch_size": None},  # None: by device
}
DEFAULT_RECIPE = "original"


class NoFaceError(ItemError):
    pass


class FrameReader:
    """``iter_frames(path, every=...)`` decoded on a background thread from the moment it is made, so
    that decoding overlaps detection (of this video's earlier frames, or of the previous video when
    the runner prefetches). Iterate once; ``close()`` stops the thread early. ``counts`` says how far
    decoding got (complete once the iteration ended)."""

    _DONE = object()

    def __init__(self, path: Path, every: int | None):
        self.path, self.every = Path(path), every
        self.counts = DecodeCounts()
        self._frames: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"decode-{self.path.name}", daemon=True)
        self._thread.start()

    def _put(self, value) -> bool:
        while not self._stop.is_set():
            try:
                self._frames.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for pair in iter_frames(self.path, every=None if self.every in (None, 1) else self.every,
                                    counts=self.counts):
                if not self._put(pair):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        try:
            while True:
                pair = self._frames.get()
                if pair is self._DONE:
                    return
                if isinstance(pair, BaseException):
                    raise pair
                yield pair
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def detect_video_boxes(path: str | Path, detector: Detector, every: int | None = DEFAULT_EVERY,
                       scale: float | str = DEFAULT_SCALE,
                       reader: FrameReader | None = None) -> dict[int, np.ndarray | None]:
    """Face boxes ``(n, 5)`` ``[x1, y1, x2, y2, score]`` in full-resolution pixels per detected frame
    (None when the frame has no face). ``every=None`` or 1 detects on every frame. ``reader``: this
    video's frames already being decoded (see :class:`FrameReader`).

    Raises VideoReadError when no frame decodes.
    """
    path = Path(path)
    result: dict[int, np.ndarray | None] = {}
    batch_indices: list[int] = []
    batch_frames: list[np.ndarray] = []

    def flush() -> None:
        for index, boxes in zip(batch_indices, detector.detect(batch_frames, scale=scale)):
            result[index] = boxes
        batch_indices.clear()
        batch_frames.clear()

    reader = reader if reader is not None else FrameReader(path, every)
    try:
        for index, frame in reader:
            if batch_frames and frame.shape != batch_frames[0].shape:
                flush()  # a resolution change mid-stream: MTCNN batches need one size
            batch_indices.append(index)
            batch_frames.append(frame)
            if len(batch_frames) == detector.batch_size:
                flush()
        if batch_frames:
            flush()
    finally:
        reader.close()  # also when detection fails: the reader thread stops and frees its frames
    if not result:
        raise VideoReadError(f"{path}: no frame could be decoded (zero-frame, truncated or corrupt video)")
    return result


def _shortest_float32(value) -> float:
    """The shortest decimal that reads back as the same float32: truncating it to an integer gives what
    truncating the detector's own float32 gives (no integer lies between the two), so crops cut from
    the file are the crops the detector's boxes give."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="0"))


def boxes_to_json(boxes: dict[int, np.ndarray | None]) -> dict[str, list | None]:
    """The on-disk form: coordinates as their shortest float32 decimals, scores rounded to 1e-5."""
    out: dict[str, list | None] = {}
    for index, frame_boxes in sorted(boxes.items()):
        if frame_boxes is None:
            out[str(index)] = None
        else:
            out[str(index)] = [[_shortest_float32(v) for v in row[:4]] + [round(float(row[4]), 5)]
                               for row in frame_boxes]
    return out


def load_boxes(layout: DataLayout, original_id: str) -> dict[int, list[list[float]] | None]:
    """``boxes/<original>.json`` as ``{frame: [[x1, y1, x2, y2, score], ...] | None}``."""
    path = layout.boxes_path(original_id)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ItemError(f"{path} is missing: stage {STAGE_NAME} has not produced it (see "
                        f"{layout.log_path(STAGE_NAME)}); run `python -m preprocessing.{STAGE_NAME} "
                        f"{layout.root}` first") from None
    except ValueError as exc:
        raise ItemError(f"{path} is not valid JSON ({exc}); delete it and rerun {STAGE_NAME}") from None
    return {int(frame): boxes for frame, boxes in raw.items()}


# ---- stage plumbing ------------------------------------------------------------------------------
def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    known = {entry.video_id for entry in entries}
    # a fake whose original is missing has nothing to detect here; stage 2 and 5 report it
    problems = [p for p in problems if p.item not in known]
    return [WorkItem(e.video_id, (e,)) for e in entries if not e.is_fake], problems


@functools.lru_cache(maxsize=2)
def _detector(device: str, recipe: str = DEFAULT_RECIPE, name: str = DEFAULT_DETECTOR) -> Detector:
    # one model per process, reused by later runs in the same process (stateless between calls)
    return build_detector(name, DetectorSettings("preprocess", device=device, **RECIPES[recipe]))


class _WorkerState:
    """Per process: the detector and the next video's frames, decoded while this one is detected."""

    MAX_AHEAD = 2  # readers started ahead and not yet taken (each holds at most _QUEUE_FRAMES frames)

    def __init__(self, detector: Detector):
        self.detector = detector
        self.ahead: dict[tuple[Path, int | None], FrameReader] = {}

    def prefetch(self, path: Path, every: int | None) -> None:
        key = (Path(path), every)
        if key not in self.ahead:
            self.ahead[key] = FrameReader(path, every)
        while len(self.ahead) > self.MAX_AHEAD:  # never taken (the order changed): drop the oldest
            self.ahead.pop(next(iter(self.ahead))).close()

    def reader_for(self, path: Path, every: int | None) -> FrameReader:
        reader = self.ahead.pop((Path(path), every), None)
        return reader if reader is not None else FrameReader(path, every)


def _make_state(options: dict, threads: int) -> _WorkerState:
    import torch

    torch.set_num_threads(threads)
    return _WorkerState(_detector(options.get("device", "auto"), options.get("recipe", DEFAULT_RECIPE),
                                  options.get("detector", DEFAULT_DETECTOR)))


def _every(options: dict) -> int | None:
    return None if options.get("all_frames") else int(options.get("every", DEFAULT_EVERY))


def _prefetch(layout: DataLayout, item: WorkItem, state: _WorkerState, options: dict) -> None:
    state.prefetch(item.videos[0].path, _every(options))


def _process(layout: DataLayout, item: WorkItem, state: _WorkerState, options: dict) -> ItemResult:
    entry = item.videos[0]
    every = _every(options)
    reader = state.reader_for(entry.path, every)
    boxes = detect_video_boxes(entry.path, state.detector, every=every, scale=options.get("scale", DEFAULT_SCALE),
                               reader=reader)
    if all(b is None for b in boxes.values()):
        raise NoFaceError(f"{entry.path}: no face found in any of the {len(boxes)} frames checked; the video "
                          f"gets no boxes and so no crops (check the file, or try --scale 1 or --all-frames)")
    target = layout.boxes_path(entry.video_id)
    write_json_atomic(target, boxes_to_json(boxes), root=layout.boxes_dir)
    partial = reader.counts.partial_warning(entry.path)
    return ItemResult([target], [partial] if partial else [])


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [item.videos[0].path]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.boxes_path(item.key)]


def _flat_dirs(layout: DataLayout) -> list[Path]:
    return [layout.boxes_dir]


STAGE = Stage(STAGE_NAME, _list_items, _process, _make_state,
              option_names=("every", "all_frames", "scale", "recipe"), added_options={"detector": DEFAULT_DETECTOR},
              flat_dirs=_flat_dirs, prefetch=_prefetch, inputs=_inputs, item_outputs=_item_outputs,
              output_dirs=_flat_dirs)


def stage_options(every: int = DEFAULT_EVERY, all_frames: bool = False, scale: float | str = DEFAULT_SCALE,
                  device: str = "auto", recipe: str = DEFAULT_RECIPE, detector: str = DEFAULT_DETECTOR) -> dict:
    if int(every) < 1:
        raise ValueError(f"--every {every}: must be >= 1")
    if recipe not in RECIPES:
        raise ValueError(f"--recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    check_detector(detector)
    check_device(device)
    return {"every": int(every), "all_frames": bool(all_frames), "scale": scale, "device": device, "recipe": recipe,
            "detector": detector}


def check_device(device: str) -> None:
    """Fail before any work (exit code 2) when --device names something this machine lacks."""
    try:
        resolve_device(device)
    except RuntimeError as exc:
        raise ValueError(str(exc)) from None


def detect_original_faces(data_root, workers: int | None = None, shard=None, progress: bool = True,
                          every: int = DEFAULT_EVERY, all_frames: bool = False, scale: float | str = DEFAULT_SCALE,
                          device: str = "auto", recipe: str = DEFAULT_RECIPE, detector: str = DEFAULT_DETECTOR):
    """Stage 1 over DATA_ROOT; returns the StageSummary."""
    return run_stage(STAGE, data_root, stage_options(every, all_frames, scale, device, recipe, detector), workers,
                     shard, progress)


def add_detection_arguments(parser) -> None:
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY,
                        help="detect on frames 0, N, 2N, ... (the frames stage 2 crops; default 10)")
    parser.add_argument("--all-frames", action="store_true",
                        help="detect on every frame (the original recipe; ~10x slower)")
    parser.add_argument("--scale", type=scale_arg, default=DEFAULT_SCALE,
                        help="detector input scale: a factor (default 0.5, the original recipe's) or auto "
                             "(2x below 300 px, 1x to 1000, 0.5x above, 0.33x above 1900)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=DEFAULT_RECIPE,
                        help="original (default): frames halved with PIL and faces largest first, the original "
                             "recipe's boxes and so its crops; fast: OpenCV's area filter and faces by score "
                             "(cheaper on large frames, boxes a few px off the recipe's)")
    parser.add_argument("--detector", choices=DETECTORS.names(), default=DEFAULT_DETECTOR,
                        help=f"face detector of stage 1 and of the landmarks stage (default {DEFAULT_DETECTOR})")


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    add_detection_arguments(parser)
    args = parser.parse_args(argv)
    return run_cli(lambda: detect_original_faces(layout_of(args), args.workers, args.shard, not args.no_progress,
                                                 args.every, args.all_frames, args.scale, args.device,
                                                 args.recipe, args.detector))


if __name__ == "__main__":
    raise SystemExit(main())
