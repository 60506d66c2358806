"""The DFDC dataset as it ships: ``dfdc_train_part_*`` folders of videos, each with a ``metadata.json``.

The reader registered as ``dfdc``: ``scan`` lists and checks every video of a DATA_ROOT's parts (the one
parser of the parts' metadata files); ``folder_labels`` reads the labels of a folder of test videos (its
``metadata.json``, else its ``labels.csv``: DFDC's public test set ships ``filename,label`` with 1 = FAKE). ``read_labels`` reads a labels file given by hand (a DFDC ``metadata.json`` or a
``filename,label`` CSV). FF++ videos repacked into this layout keep their method as the suffix of their
name (``033_097_DF.mp4``: Deepfakes), which the entries carry as their method.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import replace
from pathlib import Path

from core.errors import InputError
from core.files import is_inside, name_problem, path_problem
from datasets.readers import (
    FAKE,
    FFPP_METHOD_NAMES,
    READERS,
    REAL,
    FolderLabels,
    LayoutProblem,
    ReaderOptions,
    VideoEntry,
    smallest_in_group,
)

NAME = "dfdc"
PART_PREFIX = "dfdc_train_part_"
PART_GLOB = f"{PART_PREFIX}*"
METADATA_NAME = "metadata.json"
TEST_LABELS_NAME = "labels.csv"  # DFDC's test set: filename,label (1 = FAKE, 0 = REAL)
_NAME_TOKENS = re.compile(r"[_\-.]+")
_FFPP_SUFFIX = re.compile(r"_(" + "|".join(sorted(FFPP_METHOD_NAMES, key=len, reverse=True)) + r")$")


def video_id_of(file_name: str) -> str:
    return Path(file_name).stem


def part_number(name: str, default: int = -1) -> int:
    """The number a part folder's name ends with (``dfdc_train_part_12`` -> 12), else ``default``."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else default


def part_folders(root: Path) -> list[Path]:
    """The ``dfdc_train_part_*`` folders of ``root``, by part number."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob(PART_GLOB) if p.is_dir()), key=lambda p: (part_number(p.name), p.name))


def method_in_name(file_name: str) -> str | None:
    """The FF++ method a repacked FF++ fake names as its suffix (``033_097_DF.mp4`` -> ``DF``), else None."""
    match = _FFPP_SUFFIX.search(file_name.rsplit(".", 1)[0])
    return match.group(1) if match else None


def _method(file_name: str, info: dict) -> str | None:
    """A fake's method: its metadata's ``"method"``, else the FF++ suffix of its name."""
    method = info.get("method")
    return str(method) if method else method_in_name(file_name)


# ---- reading metadata.json ------------------------------------------------------------------------
_ENTRY_EXAMPLE = '{"label": "FAKE", "original": "xyz.mp4"}'


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
    fake = label.upper() == FAKE
    return VideoEntry(video_id, path, FAKE if fake else REAL, original if fake else None, part.name,
                      method=_method(file_name, info) if fake else None, dataset=NAME)


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


def with_identity_groups(entries: list[VideoEntry]) -> list[VideoEntry]:
    """The entries, each with its identity group: an original, its fakes, and every original whose id is
    a token of one of those fakes' names (split on ``_``, ``-`` and ``.``; FF++ repacked into this layout
    names a fake ``TTT_SSS_M``, target ``TTT`` with the face of ``SSS``: ``033_097_DF`` ties ``033`` to
    ``097``, and so ``097_033_*`` too). A group is named by its smallest original id; a fake whose
    original is not a listed real video is in none."""
    originals = {e.video_id for e in entries if not e.is_fake}
    links = [(token, e.source_id) for e in entries if e.is_fake and e.source_id in originals
             for token in _NAME_TOKENS.split(e.video_id) if token in originals and token != e.source_id]
    groups = smallest_in_group(originals, links)
    return [replace(e, identity_group=groups.get(e.source_id)) for e in entries]


def scan(root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
    """Every video listed in every part's metadata.json, sorted by id, plus the problems found.

    Problems (not fatal, each entry concerned is left out): a part without metadata.json or with
    unreadable JSON, an entry of the wrong type, a file name that gives no usable id or points
    outside its part folder, a listed file that is missing, an id listed more than once (in one
    part or several: none of them is used). Fakes whose original is missing, is themselves or is
    another fake stay listed with a problem each (no stage has an item for them).
    """
    found: list[VideoEntry] = []
    problems: list[LayoutProblem] = []
    for part in part_folders(Path(root)):
        metadata, problem = _read_metadata(part)
        if problem is not None:
            problems.append(problem)
            continue
        for file_name, info in sorted(metadata.items()):
            entry = _entry_of(part, file_name, info)
            (found if isinstance(entry, VideoEntry) else problems).append(entry)
    entries, identity_problems = _unique_entries(found)
    return with_identity_groups([entries[k] for k in sorted(entries)]), problems + identity_problems


NO_LABELS_HINT = ("fix it, or predict without scoring: add --no-labels (every video still gets its row; "
                  "only the scores are left out)")


def parse_label(value) -> int | None:
    """1 (FAKE), 0 (REAL), or None for anything else; a ``metadata.json`` entry is a dict with ``"label"``."""
    if isinstance(value, dict):
        value = value.get("label")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = str(value).strip().upper()
    return 1 if text in ("FAKE", "1", "1.0") else 0 if text in ("REAL", "0", "0.0") else None


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """``file name -> 1 (FAKE) / 0 (REAL)`` from a DFDC ``metadata.json`` or a ``filename,label`` CSV.

    A bad entry (a label that is not FAKE/REAL/1/0, a name given twice with two labels) is an InputError
    naming the file and the entry, and ``--no-labels``."""
    path = Path(path)
    problem = path_problem(path, want="file")
    if problem:
        raise InputError(f"labels file {path} {problem}; pass a DFDC metadata.json or a filename,label CSV, "
                         f"or add --no-labels")
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                entries = [(f"line {reader.line_num}", row.get("filename"), row.get("label")) for row in reader]
                if reader.fieldnames is not None and not {"filename", "label"} <= set(reader.fieldnames):
                    raise InputError(f"labels file {path} needs the columns filename,label (has "
                                     f"{sorted(reader.fieldnames)}); {NO_LABELS_HINT}")
        else:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise InputError(f"labels file {path}: expected a JSON object of file name -> "
                                 f"{{'label': 'FAKE'|'REAL'}}, found a {type(data).__name__}; {NO_LABELS_HINT}")
            entries = [(f"entry {name!r}", name, value) for name, value in data.items()]
    except (OSError, ValueError, csv.Error) as exc:
        raise InputError(f"labels file {path} cannot be read: {exc}; {NO_LABELS_HINT}") from exc
    labels: dict[str, int] = {}
    for where, name, value in entries:
        label = parse_label(value)
        if not name or label is None:
            what = "has no file name" if not name else f"{name} has the label {value!r} (expected FAKE/REAL or 1/0)"
            raise InputError(f"labels file {path}, {where}: {what}; {NO_LABELS_HINT}")
        if labels.get(name, label) != label:
            raise InputError(f"labels file {path}, {where}: {name} is labelled twice, as {labels[name]} and "
                             f"{label}; {NO_LABELS_HINT}")
        labels[name] = label
    return labels


def read_methods(path: Path) -> dict[str, str]:
    """``file name -> manipulation method`` where a DFDC-style ``metadata.json`` names one (``"method"``)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # read_labels has already reported an unreadable file
    return {name: str(v["method"]) for name, v in data.items() if isinstance(v, dict) and v.get("method")} \
        if isinstance(data, dict) else {}


def labels_file_entries(path: str | os.PathLike) -> FolderLabels:
    """The labelled videos a labels file names (:func:`read_labels`), each fake with its method (the
    file's ``"method"``, else the FF++ suffix of its name), as entries of the folder the file is in."""
    path = Path(path)
    labels = read_labels(path)
    methods = read_methods(path)
    entries = {name: VideoEntry(video_id_of(name), path.parent / name, FAKE if label else REAL, None, None,
                                method=(methods.get(name) or method_in_name(name)) if label else None,
                                dataset=NAME)
               for name, label in labels.items()}
    return FolderLabels(entries, path)


@READERS.register(NAME)
class DfdcReader:
    """DFDC's training download (``dfdc_train_part_*/`` with a ``metadata.json`` each) and a folder of test
    videos with its ``metadata.json`` or ``labels.csv``."""

    name = NAME
    expected = f"{PART_GLOB} folders (DFDC), each with a {METADATA_NAME}"

    def __init__(self, options: ReaderOptions | None = None):
        self.options = options or ReaderOptions()

    def found_in(self, root: Path) -> bool:
        return bool(part_folders(Path(root)))

    def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        return scan(root)

    def folder_labels(self, folder: Path) -> FolderLabels | None:
        for name in (METADATA_NAME, TEST_LABELS_NAME):
            if (Path(folder) / name).is_file():
                return labels_file_entries(Path(folder) / name)
        return None
