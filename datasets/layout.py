"""The DATA_ROOT layout: the one place that knows where inputs and outputs live.

Input (never written to): one or more datasets as they ship, each read by its reader (``datasets``;
docs/datasets.md), e.g.::

    DATA_ROOT/dfdc_train_part_*/{*.mp4, metadata.json}                       DFDC
    DATA_ROOT/{original,manipulated}_sequences/<source>/<comp>/videos/*.mp4   FaceForensics++ and DFD
    DATA_ROOT/{Celeb-real,YouTube-real,Celeb-synthesis}/*.mp4                 Celeb-DF

Outputs::

    boxes/<original>.json
    crops/<video>/<frame>_<face>.png
    landmarks/<original>/<frame>_<face>.npy
    landmarks68/<original>/<frame>_<face>.npy
    diffs/<fake>/<frame>_<face>_diff.png
    clips/<video>/<person>_<chunk>.mp4 + clips/<video>/clips.json   (opt-in face-track clips)
    folds.csv
    logs/<stage>.jsonl
    progress/<stage>/<item>.json    (the runner's markers of finished items)

DFDC's video ids are file stems (``abc.mp4`` -> ``abc``); other datasets' ids start with the dataset's
name (``ffpp_c23_033``), so that two datasets in one DATA_ROOT never share one. An id names
output files and folders, so one that is empty, ``.``, ``..``, starts with a dot or holds a path
separator is refused, as is a listed file outside its part folder or an id listed twice; every delete
and overwrite of an output is checked to stay inside its output folder (``guard_inside``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from datasets.dfdc import PART_GLOB, PART_PREFIX, part_folders, part_number
from datasets.readers import READERS, LayoutProblem, ReaderOptions, VideoEntry, chosen_readers, scan_root

__all__ = ["DataLayout", "FOLDS_COLUMNS", "LayoutError", "TEST_VIDEOS_NAME", "crop_name", "parse_crop_name",
           "part_number"]

TEST_VIDEOS_NAME = "test_videos"  # the sample dataset's held-out videos, next to the parts
FOLDS_COLUMNS = ("video", "file", "label", "original", "frame", "fold")  # folds.csv, written by stage 5
CLIPS_INDEX_NAME = "clips.json"  # a video's clip list, next to its clips
_CROP_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


class LayoutError(Exception):
    """DATA_ROOT cannot be used at all (missing folder, no dataset in it, an unknown dataset named)."""


def parse_crop_name(name: str) -> tuple[int, int] | None:
    """``'120_0.png'`` -> ``(120, 0)``; None for anything else."""
    match = _CROP_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def crop_name(frame: int, face: int) -> str:
    return f"{frame}_{face}.png"


class DataLayout:
    """Paths and metadata of one DATA_ROOT. ``dataset``: the readers to use (comma-separated names; None:
    every reader whose tree is in the root); ``options``: what they read (``--compression``)."""

    def __init__(self, root: str | os.PathLike, dataset: str | None = None, options: ReaderOptions | None = None):
        self.root = Path(root)
        self.dataset = dataset
        self.options = options or ReaderOptions()

    # ---- input -------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise LayoutError when the root is unusable (the only fatal case for a stage)."""
        if not self.root.is_dir():
            raise LayoutError(f"DATA_ROOT {self.root} does not exist or is not a folder; pass the folder "
                              f"that holds the dataset (e.g. its {PART_GLOB} folders)")
        try:
            readers = self.readers()
        except ValueError as exc:
            raise LayoutError(f"--dataset {self.dataset}: {exc}") from None
        missing = [r for r in readers if not r.found_in(self.root)]
        if missing:
            raise LayoutError(f"--dataset {self.dataset}: {self.root} holds no {missing[0].expected}; pass the folder "
                              f"that does, or leave --dataset out to read what is there")
        if not readers:
            known = "; ".join(f"no {cls(self.options).expected}" for _, cls in READERS.items())
            raise LayoutError(f"no dataset in {self.root}: {known}. DATA_ROOT must hold a dataset as it ships "
                              f"(docs/datasets.md), e.g. make one with `python -m sample_data.make_sample_dataset "
                              f"{self.root}`")

    def readers(self) -> list:
        """The readers of this root (ValueError naming the known ones for an unknown ``dataset``)."""
        return chosen_readers(self.root, self.dataset, self.options)

    def part_dir(self, index: int) -> Path:
        """Input folder ``dfdc_train_part_<index>`` (only the sample-dataset generator writes one)."""
        return self.root / f"{PART_PREFIX}{index}"

    @property
    def test_videos_dir(self) -> Path:
        return self.root / TEST_VIDEOS_NAME

    def parts(self) -> list[Path]:
        """The DFDC part folders, by part number."""
        return part_folders(self.root)

    def scan(self) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        """Every video the dataset readers of this root list, sorted by id, plus the problems found
        (:func:`datasets.readers.scan_root`)."""
        return scan_root(self.root, self.dataset, self.options)

    # ---- outputs -----------------------------------------------------------------------------
    @property
    def boxes_dir(self) -> Path:
        return self.root / "boxes"

    def boxes_path(self, original_id: str) -> Path:
        return self.boxes_dir / f"{original_id}.json"

    @property
    def crops_root(self) -> Path:
        return self.root / "crops"

    def crops_dir(self, video_id: str) -> Path:
        return self.crops_root / video_id

    def crop_path(self, video_id: str, frame: int, face: int) -> Path:
        return self.crops_dir(video_id) / crop_name(frame, face)

    @property
    def landmarks_root(self) -> Path:
        return self.root / "landmarks"

    def landmarks_dir(self, original_id: str) -> Path:
        return self.landmarks_root / original_id

    def landmarks_path(self, original_id: str, frame: int, face: int) -> Path:
        return self.landmarks_dir(original_id) / f"{frame}_{face}.npy"

    @property
    def landmarks68_root(self) -> Path:
        return self.root / "landmarks68"

    def landmarks68_dir(self, original_id: str) -> Path:
        return self.landmarks68_root / original_id

    def landmarks68_path(self, original_id: str, frame: int, face: int) -> Path:
        return self.landmarks68_dir(original_id) / f"{frame}_{face}.npy"

    @property
    def diffs_root(self) -> Path:
        return self.root / "diffs"

    def diffs_dir(self, fake_id: str) -> Path:
        return self.diffs_root / fake_id

    def diff_path(self, fake_id: str, frame: int, face: int) -> Path:
        return self.diffs_dir(fake_id) / f"{frame}_{face}_diff.png"

    @property
    def clips_root(self) -> Path:
        return self.root / "clips"

    def clips_dir(self, video_id: str) -> Path:
        return self.clips_root / video_id

    def clip_path(self, video_id: str, name: str) -> Path:
        """One face-track clip, ``name`` = ``<person>_<chunk>``."""
        return self.clips_dir(video_id) / f"{name}.mp4"

    def clips_index_path(self, video_id: str) -> Path:
        """The clip list of a video (frames, region and track of each clip; written after its clips)."""
        return self.clips_dir(video_id) / CLIPS_INDEX_NAME

    @property
    def folds_csv(self) -> Path:
        return self.root / "folds.csv"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log_path(self, stage: str) -> Path:
        return self.logs_dir / f"{stage}.jsonl"

    def progress_dir(self, stage: str) -> Path:
        return self.root / "progress" / stage

    def progress_path(self, stage: str, item: str) -> Path:
        """Marker a stage writes last for a finished item (its outputs, options and input fingerprints,
        so reruns skip it while those still hold)."""
        return self.progress_dir(stage) / f"{item}.json"

    def crop_files(self, video_id: str) -> list[tuple[int, int]]:
        """(frame, face) of every crop on disk for a video, sorted."""
        folder = self.crops_dir(video_id)
        if not folder.is_dir():
            return []
        found = (parse_crop_name(p.name) for p in folder.iterdir())
        return sorted(f for f in found if f is not None)
