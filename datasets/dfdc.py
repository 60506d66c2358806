"""The DFDC dataset as it ships: ``dfdc_train_part_*`` folders of videos, each with a ``metadata.json``.

``scan`` lists and checks every video of a DATA_ROOT (the one parser of the parts' metadata files);
``read_labels`` and ``read_methods`` read the labels of a folder of test videos (a DFDC
``metadata.json`` or a ``filename,label`` CSV).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.files import path_problem

if TYPE_CHECKING:
    from datasets.layout import DataLayout


PART_PREFIX = "dfdc_train_part_"
PART_GLOB = f"{PART_PREFIX}*"
METADATA_NAME = "metadata.json"


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


def scan(layout: DataLayout) -> tuple[list[VideoEntry], list[LayoutProblem]]:
    """Every video listed in every part's metadata.json, sorted by id, plus the problems found.

    Problems (not fatal): a part without metadata.json or with unreadable JSON, a listed file
    that is missing, a fake whose original is not listed anywhere.
    """
    entries: dict[str, VideoEntry] = {}
    problems: list[LayoutProblem] = []
    for part in layout.parts():
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


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """``file name -> 1 (FAKE) / 0 (REAL)`` from a DFDC ``metadata.json`` or a ``filename,label`` CSV."""
    path = Path(path)
    problem = path_problem(path, want="file")
    if problem:
        raise InputError(f"labels file {path} {problem}; pass a DFDC metadata.json or a filename,label CSV")

    def parse(name: str, value) -> int:
        if isinstance(value, dict):
            value = value.get("label")
        text = str(value).strip().upper()
        if text in ("FAKE", "1", "1.0"):
            return 1
        if text in ("REAL", "0", "0.0"):
            return 0
        raise InputError(f"{path}: label of {name} is {value!r}; expected FAKE/REAL or 1/0")

    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            if rows and not {"filename", "label"} <= set(rows[0]):
                raise InputError(f"{path} needs the columns filename,label (has {sorted(rows[0])})")
            return {row["filename"]: parse(row["filename"], row["label"]) for row in rows}
        data = json.loads(path.read_text())
    except (OSError, ValueError, csv.Error) as exc:
        raise InputError(f"labels file {path} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of file name -> {{'label': 'FAKE'|'REAL'}}")
    return {name: parse(name, value) for name, value in data.items()}


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
