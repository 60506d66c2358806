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

Video ids are file stems (``abc.mp4`` -> ``abc``); metadata.json keeps DFDC's file names. An id names
output files and folders, so one that is empty, ``.``, ``..``, starts with a dot or holds a path
separator is refused, as is a listed file outside its part folder or an id listed twice; every delete
and overwrite of an output is checked to stay inside its output folder (``guard_inside``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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

        Problems (not fatal, each entry concerned is left out): a part without metadata.json or with
        unreadable JSON, an entry of the wrong type, a file name that gives no usable id or points
        outside its part folder, a listed file that is missing, an id listed more than once (in one
        part or several: none of them is used). Fakes whose original is missing, is themselves or is
        another fake stay listed with a problem each (no stage has an item for them).
        """
        found: list[VideoEntry] = []
        problems: list[LayoutProblem] = []
        for part in self.parts():
            metadata, problem = _read_metadata(part)
            if problem is not None:
                problems.append(problem)
                continue
            for file_name, info in sorted(metadata.items()):
                entry = _entry_of(part, file_name, info)
                (found if isinstance(entry, VideoEntry) else problems).append(entry)
        entries, identity_problems = _unique_entries(found)
        return [entries[k] for k in sorted(entries)], problems + identity_problems

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


def part_number(name: str, default: int = -1) -> int:
    """The number a part folder's name ends with (``dfdc_train_part_12`` -> 12), else ``default``."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else default


def stable_id_hash(text: str) -> int:
    """A hash of an id that is the same on every machine and run (shards and folds are drawn from it)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def _part_sort_key(path: Path):
    return (part_number(path.name), path.name)


# ---- reading metadata.json ------------------------------------------------------------------------
_SEPARATORS = {"/", "\\", os.sep, os.altsep} - {None}
_ENTRY_EXAMPLE = '{"label": "FAKE", "original": "xyz.mp4"}'


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file of its own inside an output folder (a video id, a run name), as
    the end of a message ("is empty", "starts with a dot", ...); None when it can."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, a folder's own name"
    if name.startswith("."):
        return "starts with a dot (hidden and temp files do)"
    if any(sep in name for sep in _SEPARATORS) or "\0" in name:
        return "contains a path separator"
    return None


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _read_metadata(part: Path) -> tuple[dict, LayoutProblem | None]:
    """A part's metadata.json as a dict, or the problem that skips the whole part."""
    meta_path = part / METADATA_NAME
    if not meta_path.is_file():
        return {}, LayoutProblem(part.name, f"{meta_path} is missing; this part is skipped "
                                            f"(restore metadata.json from the dataset archive)")
    try:
        metadata = json.loads(meta_path.read_text())
        if not isinstance(metadata, dict):
            raise ValueError(f"its top level is {_type_name(metadata)}, expected an object "
                             f'{{"<video>.mp4": {_ENTRY_EXAMPLE}, ...}}')
    except (OSError, ValueError) as exc:
        return {}, LayoutProblem(part.name, f"{meta_path} cannot be read: {exc}; this part is skipped")
    return metadata, None


def _original_id(meta_path: Path, file_name: str, info: dict) -> str | None | LayoutProblem:
    """The id of a fake's original (None: it names none), or the problem with its "original" value."""
    original = info.get("original")
    if original is None:
        return None
    problem = None
    if not isinstance(original, str):
        problem = f"is {_type_name(original)} ({original!r})"
    elif Path(original).name != original or name_problem(video_id_of(original)):
        problem = f"is {original!r}, not the file name of a video of the dataset"
    if problem:
        return LayoutProblem(video_id_of(file_name), f'{meta_path}: "original" of {file_name} {problem}; '
                                                      f'expected the file name of the real video it was made '
                                                      f'from, e.g. "xyz.mp4" (this video is skipped)')
    return video_id_of(original)


def _entry_of(part: Path, file_name: str, info) -> VideoEntry | LayoutProblem:
    """One entry of a part's metadata.json as a VideoEntry, or the problem that leaves it out."""
    meta_path = part / METADATA_NAME
    video_id = video_id_of(file_name)
    id_problem = name_problem(video_id)
    if id_problem:
        return LayoutProblem(file_name, f"{meta_path}: {file_name!r} gives the video id {video_id!r}, which "
                                        f"{id_problem}; rename the file and its entry to a plain name such as "
                                        f"abc.mp4 (this entry is skipped)")
    path = part / file_name
    # a plain name is inside by construction (a video that is itself a symlink is the user's link);
    # only names with folders in them are resolved (a stat per folder: DFDC lists 120,000 videos)
    if Path(file_name).name != file_name and not is_inside(part, path):
        return LayoutProblem(video_id, f"{meta_path}: {file_name!r} is not inside its part folder {part}; list "
                                       f"a part's videos by their names in it, e.g. abc.mp4 (this entry is "
                                       f"skipped, nothing outside {part} is read)")
    if not isinstance(info, dict):
        return LayoutProblem(video_id, f"{meta_path}: the entry of {file_name} is {_type_name(info)} ({info!r}), "
                                       f"expected an object such as {_ENTRY_EXAMPLE} (this video is skipped)")
    if not path.is_file():
        return LayoutProblem(video_id, f"{path} is listed in {meta_path} but missing")
    label = info.get("label")
    if not isinstance(label, str) or label.upper() not in ("REAL", "FAKE"):
        return LayoutProblem(video_id, f"{meta_path}: label of {file_name} is {label!r}, expected REAL or FAKE")
    original = _original_id(meta_path, file_name, info)
    if isinstance(original, LayoutProblem):
        return original
    return VideoEntry(video_id, path, label.upper(), original if label.upper() == "FAKE" else None, part.name)


def _fake_problem(fake: VideoEntry, entries: dict[str, VideoEntry], listed: dict[str, list]) -> str | None:
    """Why a fake is left out for want of a usable original, with the fix; None when it has one."""
    original = fake.original_id
    set_it = 'it is left out (set its "original" to the real video it was made from)'
    if original is None:
        return f'names no "original" in its {METADATA_NAME}; {set_it}'
    if original == fake.video_id:
        return f"names itself as its original; {set_it}"
    if original in entries:
        return f"names {entries[original].path}, a fake, as its original; {set_it}" \
            if entries[original].is_fake else None
    if original in listed:
        return f"names original {original}, whose id is listed more than once; it is left out until that is fixed"
    return (f"names original {original}.mp4, which is not in the data; it is left out (add the part that holds "
            f"{original}.mp4, if you have it)")


def _unique_entries(found: list[VideoEntry]) -> tuple[dict[str, VideoEntry], list[LayoutProblem]]:
    """The entries by id, each id listed once; an id listed more than once is left out everywhere (its
    outputs would share one name: a fake would be cut with another video's boxes). Fakes whose original
    is missing, listed twice, themselves or another fake are kept, each with a problem."""
    by_id: dict[str, list[VideoEntry]] = {}
    for entry in found:
        by_id.setdefault(entry.video_id, []).append(entry)
    entries = {video_id: same[0] for video_id, same in by_id.items() if len(same) == 1}
    problems = [LayoutProblem(video_id, f"video id {video_id} is listed {len(same)} times: "
                                        f"{' and '.join(str(e.path) for e in same)}; outputs are named by id, "
                                        f"so none of them is used: rename or remove all but one")
                for video_id, same in sorted(by_id.items()) if len(same) > 1]
    for entry in (e for e in entries.values() if e.is_fake):
        reason = _fake_problem(entry, entries, by_id)
        if reason:
            problems.append(LayoutProblem(entry.video_id, f"fake {entry.path} {reason}"))
    return entries, problems


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


class OutsideRootError(RuntimeError):
    """A delete or overwrite aimed at a path outside the folder it belongs to: a bug, never bad input
    (inputs are checked when they are listed), so it is raised, not logged."""


def _checked_target(root: str | os.PathLike, target: str | os.PathLike) -> Path | None:
    """Where ``target`` really is (its folders' symlinks resolved, not its own last name: deleting a
    link deletes the link), or None unless that is strictly inside where ``root`` really is. The root
    may itself be a symlink (``crops/`` on a data disk): what counts is what lies below it."""
    try:
        real_root = Path(os.path.realpath(root))
        target = Path(target).absolute()  # not normalised: ".." is resolved below, after the links
        name = target.name
        # "a/.." keeps ".." as its name: resolve it too, it names a folder above
        real = Path(os.path.realpath(target)) if name in ("", ".", "..") else \
            Path(os.path.realpath(target.parent)) / name
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        return None
    return real if real_root in real.parents else None


def is_inside(root: str | os.PathLike, target: str | os.PathLike) -> bool:
    """``target`` lies strictly inside ``root`` once the symlinks of its folders are resolved."""
    return _checked_target(root, target) is not None


def guard_inside(root: str | os.PathLike, target: str | os.PathLike) -> Path:
    """``target`` as it really is (see ``is_inside``); OutsideRootError unless it is strictly inside
    ``root``. Every delete and overwrite of an output goes through here."""
    checked = _checked_target(root, target)
    if checked is None:
        raise OutsideRootError(f"refused to delete or overwrite {target}: it is not strictly inside {root} "
                               f"(which is {os.path.realpath(root)}), the only folder this step may change; "
                               f"this is a bug, please report it")
    return checked


def remove_inside(root: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Delete ``target`` (a file, a symlink: the link itself, or a whole folder) after ``guard_inside``
    allowed it; False when there was nothing to delete."""
    path = guard_inside(root, target)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def atomic_path(target: str | os.PathLike, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` only if the block succeeds.

    Temp names start with ``.tmp`` so that an interrupted run leaves nothing that looks like output,
    followed by the target's name (``.tmp.<name>.<random><suffix>``) so that a cleanup can tell
    whose temp file it is (see ``temp_target_name``). With ``root``, a target not strictly inside it
    is refused (``guard_inside``) before anything is written.
    """
    target = Path(target) if root is None else guard_inside(root, target)
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


def write_bytes_atomic(target: str | os.PathLike, data: bytes, root: str | os.PathLike | None = None) -> None:
    with atomic_path(target, root) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str, root: str | os.PathLike | None = None) -> None:
    write_bytes_atomic(target, text.encode("utf-8"), root)


def write_json_atomic(target: str | os.PathLike, obj, root: str | os.PathLike | None = None) -> None:
    write_text_atomic(target, json.dumps(obj, sort_keys=True), root)
