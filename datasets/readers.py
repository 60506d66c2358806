"""Dataset readers: the one seam through which every stage learns what the videos of a dataset are.

A reader turns a dataset's folder, as the dataset ships, into :class:`VideoEntry` records (path, label,
original, identity group, manipulation method, dataset) plus the :class:`LayoutProblem` found while
listing them. Preprocessing (``DataLayout.scan``), the folds, training (through folds.csv) and the
predictor's labels all take these entries; nothing else parses a dataset's files or names.

A reader is a class registered in :data:`READERS` under its dataset's name::

    @READERS.register("mydata")
    class MyDataReader:
        name = "mydata"
        expected = "mydata/real/ and mydata/fake/ folders"   # for messages: "no <expected> in ROOT"
        def __init__(self, options: ReaderOptions): ...
        def found_in(self, root: Path) -> bool: ...          # is this dataset's tree in root?
        def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]: ...
        def folder_labels(self, folder: Path) -> FolderLabels | None: ...   # the labels of a test folder

``datasets/__init__.py`` imports every reader module, so importing ``datasets`` fills the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.registry import Registry

REAL, FAKE = "REAL", "FAKE"
SPLITS = ("train", "val", "test")  # the official splits a reader may put a video in
COMPRESSIONS = ("c0", "c23", "c40")  # FaceForensics++'s H.264 levels (c0 ships in folders named raw)
DEFAULT_COMPRESSION = "c23"


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset, as its reader found it."""

    video_id: str  # names its outputs (crops/<video_id>/...); unique in a DATA_ROOT
    path: Path
    label: str  # "REAL" or "FAKE"
    original_id: str | None  # id of the real video a fake was made from (its faces' boxes); None for reals
    part: str | None  # the numbered download part it came from (DFDC's dfdc_train_part_N), else None
    # videos with the same group share a face: the folds keep them together (None: in no fold)
    identity_group: str | None = None
    method: str | None = None  # manipulation method of a fake, where the dataset says it
    dataset: str = "dfdc"  # the reader's name
    split: str | None = None  # the dataset's official split ("train", "val", "test"), where it has one

    @property
    def is_fake(self) -> bool:
        return self.label == FAKE

    @property
    def source_id(self) -> str:
        """The video whose face boxes this one is cut with (itself for reals)."""
        return self.original_id if self.is_fake and self.original_id else self.video_id


@dataclass(frozen=True)
class LayoutProblem:
    """A problem with the input found while listing it (logged by stages, never fatal)."""

    item: str
    error: str


@dataclass(frozen=True)
class FolderLabels:
    """The labelled videos of one folder of test videos, by file name, and where the labels come from."""

    entries: dict[str, VideoEntry]  # file name -> entry
    source: Path  # the labels file, or the dataset folder the reader read


@dataclass(frozen=True)
class ReaderOptions:
    """Choices a reader takes from the command line (a reader ignores those that are not its own)."""

    compression: str = DEFAULT_COMPRESSION  # FaceForensics++ / DFD: which of c0 (raw), c23, c40 to read

    def __post_init__(self):
        if self.compression == "raw":
            object.__setattr__(self, "compression", "c0")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"--compression {self.compression}: expected one of {', '.join(COMPRESSIONS)} (raw is "
                             f"c0), the FaceForensics++ folder to read")


class DatasetReader(Protocol):
    name: str
    expected: str  # what this dataset's tree holds, for messages ("no <expected> in DATA_ROOT")

    def found_in(self, root: Path) -> bool:
        """Whether ``root`` holds this dataset's tree (its folders as the dataset ships them)."""

    def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        """Every usable video of the tree in ``root``, sorted by id, and the problems found."""

    def folder_labels(self, folder: Path) -> FolderLabels | None:
        """The labels of the videos in ``folder`` when this reader knows the folder, else None."""


READERS: Registry[type] = Registry("dataset reader")

# manipulation methods by the short name the evaluation's rows use, with the name their authors gave them
FFPP_METHOD_NAMES = {"DF": "Deepfakes", "F2F": "Face2Face", "FS": "FaceSwap", "FSH": "FaceShifter",
                     "NT": "NeuralTextures"}
METHOD_NAMES = {**FFPP_METHOD_NAMES, "DFD": "DeepFakeDetection"}


def build_reader(name: str, options: ReaderOptions | None = None) -> DatasetReader:
    """The reader registered as ``name`` (ValueError listing the known names when there is none)."""
    return READERS.get(name)(options or ReaderOptions())


def smallest_in_group(nodes: Iterable[str], links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """node -> the smallest node connected to it through ``links`` (pairs of nodes; a pair naming a node
    not in ``nodes`` is ignored)."""
    parent = {node: node for node in sorted(nodes)}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        if a in parent and b in parent:
            root_a, root_b = find(a), find(b)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    return {node: find(node) for node in parent}


def chosen_readers(root: Path, dataset: str | None = None,
                   options: ReaderOptions | None = None) -> list[DatasetReader]:
    """The readers of ``root``: those named in ``dataset`` (comma-separated names), else every registered
    reader whose tree is in ``root``."""
    if dataset:
        return [build_reader(name.strip(), options) for name in dataset.split(",") if name.strip()]
    readers = [build_reader(name, options) for name in READERS.names()]
    return [reader for reader in readers if reader.found_in(root)]


def scan_root(root: Path, dataset: str | None = None,
              options: ReaderOptions | None = None) -> tuple[list[VideoEntry], list[LayoutProblem]]:
    """The entries of every chosen reader of ``root`` (:func:`chosen_readers`), sorted by id, and the
    problems found. An id two readers both give is left out with a problem (outputs are named by id)."""
    found: list[VideoEntry] = []
    problems: list[LayoutProblem] = []
    for reader in chosen_readers(root, dataset, options):
        entries, reader_problems = reader.scan(root)
        found += entries
        problems += reader_problems
    by_id: dict[str, list[VideoEntry]] = {}
    for entry in found:
        by_id.setdefault(entry.video_id, []).append(entry)
    for video_id, same in sorted(by_id.items()):
        if len(same) > 1:
            readers = " and the ".join(e.dataset for e in same)
            paths = " and ".join(str(e.path) for e in same)
            problems.append(LayoutProblem(video_id, f"video id {video_id} is given by the {readers} readers ({paths}); "
                                                    f"outputs are named by id, so none of them is used: read one of "
                                                    f"these datasets per DATA_ROOT (--dataset NAME)"))
    return [same[0] for _, same in sorted(by_id.items()) if len(same) == 1], problems


def folder_labels(folder: Path, dataset: str | None = None,
                  options: ReaderOptions | None = None) -> FolderLabels | None:
    """The labels of a folder of test videos from the first reader that knows it (or the one named in
    ``dataset``), None when none does."""
    names = [n.strip() for n in dataset.split(",") if n.strip()] if dataset else READERS.names()
    for name in names:
        labels = build_reader(name, options).folder_labels(folder)
        if labels is not None:
            return labels
    return None
