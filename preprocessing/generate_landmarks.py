"""Stage 3: landmarks of the original crops, so that training never runs a face detector.

* ``landmarks/<original>/<frame>_<face>.npy``: the face detector's 5 points (eyes, nose, mouth
  corners), float32 (5, 2) in crop pixels, detected on the crop (MTCNN, the default ``--detector``: with
  the landmark thresholds 0.65, 0.75, 0.75); a crop on which the detector finds no face gets no file.
* ``landmarks68/<original>/<frame>_<face>.npy``: dlib's 68 points, float32 (68, 2) in crop pixels,
  from the shape predictor given the stored face box (moved into crop coordinates): no second detector.

    python -m preprocessing.generate_landmarks DATA_ROOT [--detector mtcnn]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from core.files import atomic_path
from core.geometry import crop_box
from datasets.layout import DataLayout
from datasets.readers import LayoutProblem
from faces.detectors import DEFAULT_DETECTOR, DETECTORS, DetectorSettings, build_detector, check_detector
from faces.landmarks import shape_predictor_path
from preprocessing.detect_original_faces import check_device, load_boxes
from preprocessing.extract_crops import crops_of, group_by_original
from preprocessing.runner import ItemError, Stage, WorkItem, layout_of, run_cli, run_stage, stage_parser

STAGE_NAME = "generate_landmarks"
_NO_CLIP = (1 << 30, 1 << 30)  # a frame size larger than any video: crop_box then only clips at 0


def box_in_crop(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The face box in the pixels of its crop (the crop's top-left corner is the origin).

    The crop's top-left corner does not depend on the frame size (crop_box clips it only at 0)."""
    left, top = crop_box(box, _NO_CLIP)[:2]
    return box[0] - left, box[1] - top, box[2] - left, box[3] - top


class LandmarkModels:
    """The face detector (built for landmarks: MTCNN's landmark thresholds) and dlib's shape predictor,
    loaded once per worker."""

    def __init__(self, device: str = "auto", detector: str = DEFAULT_DETECTOR):
        import dlib

        self.detector = build_detector(detector, DetectorSettings("landmarks", device=device, batch_size=1))
        self.predictor = dlib.shape_predictor(str(shape_predictor_path()))
        self._rectangle = dlib.rectangle

    def five_points(self, crop: np.ndarray) -> np.ndarray | None:
        """The detector's 5 points of its first (most confident) face in an RGB crop, or None."""
        _, points = self.detector.detect([crop], scale=1.0, landmarks=True)
        return None if points[0] is None else points[0][0].astype(np.float32)

    def sixty_eight_points(self, crop: np.ndarray, box_px: Sequence[float]) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in box_px[:4])
        shape = self.predictor(np.ascontiguousarray(crop), self._rectangle(x1, y1, x2, y2))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def save_npy_atomic(target: Path, array: np.ndarray, root: Path | None = None) -> None:
    with atomic_path(target, root) as tmp:
        np.save(tmp, array)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ItemError(f"{path} cannot be read as an image (corrupt or truncated PNG); delete it and rerun "
                        f"extract_crops to cut it again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    known = {entry.video_id for entry in entries}
    problems = [p for p in problems if p.item not in known]  # fakes are not this stage's input
    return [WorkItem(item.key, item.videos[:1]) for item in group_by_original(entries)], problems


@functools.lru_cache(maxsize=2)
def _models(device: str, detector: str = DEFAULT_DETECTOR) -> LandmarkModels:
    # one set of models per process, reused by later runs in the same process
    return LandmarkModels(device, detector)


def _make_state(options: dict, threads: int) -> LandmarkModels:
    import torch

    torch.set_num_threads(threads)
    return _models(options.get("device", "auto"), options.get("detector", DEFAULT_DETECTOR))


def _process(layout: DataLayout, item: WorkItem, models: LandmarkModels, options: dict) -> list[Path]:
    original_id = item.key
    crops = crops_of(layout, original_id)
    boxes = load_boxes(layout, original_id)
    written: list[Path] = []
    errors: list[str] = []
    for frame, face in crops:
        crop_path = layout.crop_path(original_id, frame, face)
        try:
            frame_boxes = boxes.get(frame) or []
            if face >= len(frame_boxes):
                raise ItemError(f"{crop_path} has no box in {layout.boxes_path(original_id)}; delete the crops "
                                f"folder and rerun extract_crops")
            crop = read_rgb(crop_path)
            points5 = models.five_points(crop)
            if points5 is not None:
                target = layout.landmarks_path(original_id, frame, face)
                save_npy_atomic(target, points5, layout.landmarks_root)
                written.append(target)
            target = layout.landmarks68_path(original_id, frame, face)
            save_npy_atomic(target, models.sixty_eight_points(crop, box_in_crop(frame_boxes[face])),
                            layout.landmarks68_root)
            written.append(target)
        except Exception as exc:  # one unreadable crop must not cost the others
            errors.append(str(exc) or type(exc).__name__)
    if errors:
        raise ItemError("; ".join(errors))
    return written


def _inputs(layout: DataLayout, item: WorkItem, options: dict) -> list[Path]:
    return [layout.crops_dir(item.key), layout.boxes_path(item.key)]


def _item_outputs(layout: DataLayout, item: WorkItem) -> list[Path]:
    return [layout.landmarks_dir(item.key), layout.landmarks68_dir(item.key)]


def _output_dirs(layout: DataLayout) -> list[Path]:
    return [layout.landmarks_root, layout.landmarks68_root]


STAGE = Stage(STAGE_NAME, _list_items, _process, _make_state, added_options={"detector": DEFAULT_DETECTOR},
              inputs=_inputs, item_outputs=_item_outputs, output_dirs=_output_dirs)


def generate_landmarks(data_root, workers: int | None = None, shard=None, progress: bool = True,
                       device: str = "auto", detector: str = DEFAULT_DETECTOR):
    """Stage 3 over DATA_ROOT; returns the StageSummary."""
    check_detector(detector)
    check_device(device)
    return run_stage(STAGE, data_root, {"device": device, "detector": detector}, workers, shard, progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (for the face detector)")
    parser.add_argument("--detector", choices=DETECTORS.names(), default=DEFAULT_DETECTOR,
                        help=f"face detector giving the 5 landmarks (default {DEFAULT_DETECTOR})")
    args = parser.parse_args(argv)
    return run_cli(lambda: generate_landmarks(layout_of(args), args.workers, args.shard, not args.no_progress,
                                              args.device, args.detector))


if __name__ == "__main__":
    raise SystemExit(main())
