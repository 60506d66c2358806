"""The DATA_ROOT layout: the one place that knows where inputs and outputs live.

Input (never written to)::

    DATA_ROOT/dfdc_train_part_*/{*.mp4, metadata.json}

Outputs::

    boxes/<original>.json
    crops/<video>/<frame>_<face>.png
    landmarks/<original>/<frame>_<face>.npy
    landmarks68/<original>/<frame>_<face>.npy
    diffs/<fake>/<frame>_<face>_diff.png
    folds.csv
    logs/<stage>.jsonl
    progress/<stage>/<item>.json    (the runner's markers of finished items)

Video ids are file stems (``abc.mp4`` -> ``abc``); metadata.json keeps DFDC's file names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PART_PREFIX = "dfdc_train_part_"
PART_GLOB = f"{PART_PREFIX}*"
TEST_VIDEOS_NAME = "test_videos"  # the sample dataset's held-out videos, next to the parts
METADATA_NAME = "metadata.json"
FOLDS_COLUMNS = ("video", "file", "label", "original", "frame", "fold")  # folds.csv, written by stage 5
_CROP_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


class LayoutError(Exception):
    """DATA_ROOT cannot be used at all (missing folder, no parts)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video listed in a part's metadata.json."""

    video_id: str  # file stem
    path: Path
    label: str  # "REAL" or "FAKE"
    original_id: str | None  # stem of the original for fakes, None for reals
    part: str  # part folder name

    @property
    def is_fake(self) -> bool:
        return self.label == "FAKE"

    @property
    def source_id(self) -> str:
        """The video whose face boxes this one is cut with (itself for reals)."""
        return self.original_id if self.is_fake and self.original_id else self.video_id


@dataclass(frozen=True)
class LayoutProblem:
    """A problem with the input found while listing it (logged by stages, never fatal)."""

    item: str
    error: str


def video_id_of(file_name: str) -> str:
    return Path(file_name).stem


def parse_crop_name(name: str) -> tuple[int, int] | None:
    """``'120_0.png'`` -> ``(120, 0)``; None for anything else."""
    match = _CROP_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def crop_name(frame: int, face: int) -> str:
    return f"{frame}_{face}.png"


class DataLayout:
    """Paths and metadata of one DATA_ROOT."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ---- input -------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise LayoutError when the root is unusable (the only fatal case for a stage)."""
        if not self.root.is_dir():
            raise LayoutError(f"DATA_ROOT {self.root} does not exist or is not a folder; pass the folder "
                              f"that holds the {PART_GLOB} folders")
        if not self.parts():
            raise LayoutError(f"no {PART_GLOB} folders in {self.root}; DATA_ROOT must hold the DFDC parts, "
                              f"e.g. make one with `python -m preprocessing.make_sample_dataset {self.root}`")

    def part_dir(self, index: int) -> Path:
        """Input folder ``dfdc_train_part_<index>`` (only the sample-dataset generator writes one)."""
        return self.root / f"{PART_PREFIX}{index}"

    @property
    def test_videos_dir(self) -> Path:
        return self.root / TEST_VIDEOS_NAME

    def parts(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.glob(PART_GLOB) if p.is_dir()), key=_part_sort_key)

    def scan(self) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        """Every video listed in every part's metadata.json, sorted by id, plus the problems found.

        Problems (not fatal): a part without metadata.json or with unreadable JSON, a listed file
        that is missing, a fake whose original is not listed anywhere.
        """
        entries: dict[str, VideoEntry] = {}
        problems: list[LayoutProblem] = []
        for part in self.parts():
            meta_path = part / METADATA_NAME
            if not meta_path.is_file():
                problems.append(LayoutProblem(part.name, f"{meta_path} is missing; this part is skipped "
                                                         f"(restore metadata.json from the dataset archive)"))
                continue
            try:
                metadata = json.loads(meta_path.read_text())
                if not isinstance(metadata, dict):
                    raise ValueError("top level is not an object")
            except (OSError, ValueError) as exc:
                problems.append(LayoutProblem(part.name, f"{meta_path} cannot be read: {exc}"))
                continue
            for file_name, info in sorted(metadata.items()):
                path = part / file_name
                video_id = video_id_of(file_name)
                if not path.is_file():
                    problems.append(LayoutProblem(video_id, f"{path} is listed in {meta_path} but missing"))
                    continue
                info = info if isinstance(info, dict) else {}
                label = str(info.get("label", "")).upper()
                if label not in ("REAL", "FAKE"):
                    problems.append(LayoutProblem(video_id, f"{meta_path}: label of {file_name} is "
                                                            f"{info.get('label')!r}, expected REAL or FAKE"))
                    continue
                original = info.get("original") if label == "FAKE" else None
                entries[video_id] = VideoEntry(video_id, path, label,
                                               video_id_of(original) if original else None, part.name)
        for entry in list(entries.values()):
            if entry.is_fake and (entry.original_id is None or entry.original_id not in entries):
                problems.append(LayoutProblem(entry.video_id, f"fake {entry.path} names original "
                                                              f"{entry.original_id}.mp4, which is not in the data"))
        return [entries[k] for k in sorted(entries)], problems

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
    def folds_csv(self) -> Path:
        return self.root / "folds.csv"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log_path(self, stage: str) -> Path:
        return self.logs_dir / f"{stage}.jsonl"

    def progress_path(self, stage: str, item: str) -> Path:
        """Marker a stage writes last for a finished item (its outputs, options and input fingerprints,
        so reruns skip it while those still hold)."""
        return self.root / "progress" / stage / f"{item}.json"

    def crop_files(self, video_id: str) -> list[tuple[int, int]]:
        """(frame, face) of every crop on disk for a video, sorted."""
        folder = self.crops_dir(video_id)
        if not folder.is_dir():
            return []
        found = (parse_crop_name(p.name) for p in folder.iterdir())
        return sorted(f for f in found if f is not None)


def part_number(name: str, default: int = -1) -> int:
    """The number a part folder's name ends with (``dfdc_train_part_12`` -> 12), else ``default``."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else default


def stable_id_hash(text: str) -> int:
    """A hash of an id that is the same on every machine and run (shards and folds are drawn from it)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def _part_sort_key(path: Path):
    return (part_number(path.name), path.name)


def path_problem(path: str | os.PathLike, want: str = "file") -> str | None:
    """Why ``path`` is not an existing file (``want="file"``) or folder (``want="folder"``), as the end of
    a message ("does not exist", "is a folder", "is a file"); None when it is what is wanted."""
    path = Path(path)
    if want not in ("file", "folder"):
        raise ValueError(f"want must be 'file' or 'folder', not {want!r}")
    if not path.exists():
        return "does not exist"
    if want == "file" and path.is_dir():
        return "is a folder"
    if want == "folder" and not path.is_dir():
        return "is a file"
    return None


# ---- atomic writes -------------------------------------------------------------------------------
TEMP_PREFIX = ".tmp."
# ".tmp.<target name>.<8 random chars of mkstemp><target suffix>"
_TEMP_NAME = re.compile(r"^\.tmp\.(.+)\.[a-z0-9_]{8}(\.[^.]*)?$")


def temp_target_name(temp_name: str) -> str | None:
    """The target file name of a temp file made by ``atomic_path``; None for any other name."""
    match = _TEMP_NAME.match(temp_name)
    if not match or not match.group(1).endswith(match.group(2) or ""):
        return None
    return match.group(1)


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` only if the block succeeds.

    Temp names start with ``.tmp`` so that an interrupted run leaves nothing that looks like output,
    followed by the target's name (``.tmp.<name>.<random><suffix>``) so that a cleanup can tell
    whose temp file it is (see ``temp_target_name``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); outputs are shared data (Docker volumes, other users)
    os.chmod(tmp, 0o644)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj) -> None:
    write_text_atomic(target, json.dumps(obj, sort_keys=True))
