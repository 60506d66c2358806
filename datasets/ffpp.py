"""FaceForensics++ and DFD (its DeepFakeDetection part) as the FaceForensics download script writes them.

    ROOT/original_sequences/youtube/<c0|c23|c40>/videos/NNN.mp4                 FF++ reals (000-999)
    ROOT/manipulated_sequences/<Method>/<comp>/videos/TTT_SSS.mp4                FF++ fakes
    ROOT/original_sequences/actors/<comp>/videos/AA__scene.mp4                   DFD reals
    ROOT/manipulated_sequences/DeepFakeDetection/<comp>/videos/AA_BB__scene__HASH.mp4   DFD fakes

``<comp>`` is chosen by ``--compression`` (default c23; c0 ships in folders named ``raw``). An FF++ fake
``TTT_SSS`` is target video ``TTT`` with the face of ``SSS`` (its original: ``TTT.mp4``); the two form a
pair of the official split (``datasets/data/ffpp_splits``, the FaceForensics repository's
``dataset/splits/{train,val,test}.json``), which names every video's split and identity group. A DFD fake
``AA_BB__scene__HASH`` is actor ``AA``'s ``AA__scene.mp4`` with the face of actor ``BB``; DFD has no
official split, and its swaps join every actor to every other, so its identity groups follow the
target actor (the face swapped in may be in another fold). Ids are namespaced:
``ffpp_c23_033``, ``ffpp_c23_033_097_DF``, ``dfd_c23_01__exit_phone_room``.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from core.files import name_problem
from datasets.readers import (
    FAKE,
    FFPP_METHOD_NAMES,
    READERS,
    REAL,
    FolderLabels,
    LayoutProblem,
    ReaderOptions,
    VideoEntry,
)

ORIGINALS = "original_sequences"
MANIPULATED = "manipulated_sequences"
VIDEOS = "videos"
COMPRESSION_FOLDERS = {"c0": ("c0", "raw"), "c23": ("c23",), "c40": ("c40",)}
SPLITS_DIR = Path(__file__).resolve().parent / "data" / "ffpp_splits"
# the method folders, by the short names of the evaluation's rows (readers.METHOD_NAMES)
FFPP_METHODS = {name: code for code, name in FFPP_METHOD_NAMES.items()}
DFD_METHODS = {"DeepFakeDetection": "DFD"}


@lru_cache(maxsize=1)
def official_split() -> tuple[dict[str, str], dict[str, str]]:
    """(video number -> its split, video number -> its partner in the split's pair) from the shipped lists."""
    split_of: dict[str, str] = {}
    partner: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for first, second in json.loads((SPLITS_DIR / f"{split}.json").read_text()):
            split_of[first] = split_of[second] = split
            partner[first], partner[second] = second, first
    return split_of, partner


def compression_of(folder_name: str) -> str | None:
    """The compression a ``<comp>`` folder holds (``raw`` -> c0), None for another folder."""
    return next((c for c, names in COMPRESSION_FOLDERS.items() if folder_name in names), None)


def videos_folder(root: Path, kind: str, source: str, compression: str) -> Path | None:
    """``ROOT/kind/source/<comp>/videos`` for this compression, None when it is not there."""
    for name in COMPRESSION_FOLDERS[compression]:
        folder = root / kind / source / name / VIDEOS
        if folder.is_dir():
            return folder
    return None


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mp4" and not p.name.startswith("."))


class FaceForensicsTree:
    """What the FF++ and DFD readers share: the folders of one compression and the entries of a folder."""

    name = ""
    expected = ""
    real_source = ""  # the folder under original_sequences
    methods: dict[str, str] = {}  # folder under manipulated_sequences -> short method name
    real_example = ""
    fake_example = ""

    def __init__(self, options: ReaderOptions | None = None):
        self.options = options or ReaderOptions()

    def found_in(self, root: Path) -> bool:
        root = Path(root)
        return (root / ORIGINALS / self.real_source).is_dir() or any(
            (root / MANIPULATED / method).is_dir() for method in self.methods)

    def parse(self, stem: str, method: str | None) -> tuple[str, str | None, str, str | None] | None:
        """(id stem, original's id stem or None, identity group, split or None) of a file name, None when
        it is not named as the dataset names its videos."""
        raise NotImplementedError

    def entry(self, path: Path, method: str | None, compression: str) -> VideoEntry | LayoutProblem:
        """The entry of one video file (``method``: its manipulation folder, None for a real)."""
        parsed = self.parse(path.stem, method)
        example = self.real_example if method is None else self.fake_example
        if parsed is None or name_problem(path.stem):
            return LayoutProblem(f"{self.name}:{path.name}", f"{path} is not named like a {self.name} video "
                                                              f"({example}); it is left out (rename it as the "
                                                              f"dataset names it)")
        stem, original, group, split = parsed
        prefix = f"{self.name}_{compression}_"
        return VideoEntry(prefix + stem, path, REAL if method is None else FAKE,
                          None if original is None else prefix + original, None,
                          identity_group=f"{self.name}_{group}", method=None if method is None else self.methods[method],
                          dataset=self.name, split=split)

    def folders(self, root: Path) -> list[tuple[Path | None, str | None]]:
        """(videos folder or None when absent, manipulation folder or None for the reals) of this compression."""
        compression = self.options.compression
        return [(videos_folder(root, ORIGINALS, self.real_source, compression), None)] + [
            (videos_folder(root, MANIPULATED, method, compression), method) for method in self.methods]

    def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        root = Path(root)
        folders = self.folders(root)
        if all(folder is None for folder, _ in folders):
            return [], [self._no_compression_problem(root)]
        found: list[VideoEntry] = []
        problems: list[LayoutProblem] = []
        for folder, method in folders:
            for path in _videos(folder) if folder is not None else []:
                entry = self.entry(path, method, self.options.compression)
                (found if isinstance(entry, VideoEntry) else problems).append(entry)
        return sorted(found, key=lambda e: e.video_id), problems + self._missing_originals(root, found, folders[0][0])

    def _no_compression_problem(self, root: Path) -> LayoutProblem:
        present = sorted({c for kind, source in [(ORIGINALS, self.real_source)] + [(MANIPULATED, m) for m in self.methods]
                          for c in COMPRESSION_FOLDERS if videos_folder(root, kind, source, c) is not None})
        fix = f"pass --compression {present[0]}" if present else "download its videos (-t videos)"
        return LayoutProblem(self.name, f"{root} holds a {self.name} tree without {self.options.compression} videos "
                                        f"(found: {', '.join(present) or 'none'}); {fix}")

    def _missing_originals(self, root: Path, entries: list[VideoEntry], real_folder: Path | None) -> list[LayoutProblem]:
        """A fake whose original is not there stays listed (no stage has an item for it) with a problem; with
        no real folder at all, one problem says so."""
        fakes = [e for e in entries if e.is_fake]
        if real_folder is None:
            return [LayoutProblem(self.name, f"{root} has no {ORIGINALS}/{self.real_source}/"
                                             f"{self.options.compression}/{VIDEOS} folder: the {len(fakes)} fakes have no "
                                             f"original to cut their faces with and are left out (download the "
                                             f"originals too)")] if fakes else []
        ids = {e.video_id for e in entries if not e.is_fake}
        return [LayoutProblem(e.video_id, f"fake {e.path}: its original {real_folder / (e.original_id.split('_', 2)[2] + '.mp4')} "
                                          f"is missing; it is left out (download it, if you can)")
                for e in fakes if e.original_id not in ids]

    def folder_labels(self, folder: Path) -> FolderLabels | None:
        """The labels of a ``.../<comp>/videos`` folder of this tree."""
        folder = Path(os.path.abspath(folder))  # the path as given: a linked folder keeps its place in the tree
        parts = folder.parts
        if folder.name != VIDEOS or len(parts) < 5 or compression_of(parts[-2]) is None:
            return None
        kind, source = parts[-4], parts[-3]
        method = source if kind == MANIPULATED and source in self.methods else None
        if not (kind == ORIGINALS and source == self.real_source) and method is None:
            return None
        entries = {}
        for path in _videos(folder):
            entry = self.entry(path, method, compression_of(parts[-2]))
            if isinstance(entry, VideoEntry):
                entries[path.name] = entry
        return FolderLabels(entries, folder.parents[3])


_FFPP_REAL = re.compile(r"^(\d{3})$")
_FFPP_FAKE = re.compile(r"^(\d{3})_(\d{3})$")


@READERS.register("ffpp")
class FfppReader(FaceForensicsTree):
    """FaceForensics++: the 1000 YouTube originals and their five manipulations, with the official split."""

    name = "ffpp"
    expected = f"{ORIGINALS}/youtube or {MANIPULATED}/<{'|'.join(FFPP_METHODS)}> folders (FaceForensics++)"
    real_source = "youtube"
    methods = FFPP_METHODS
    real_example = "033.mp4"
    fake_example = "033_097.mp4: target 033 with the face of 097"

    def parse(self, stem: str, method: str | None):
        split_of, partner = official_split()
        match = (_FFPP_REAL if method is None else _FFPP_FAKE).match(stem)
        if match is None:
            return None
        target = match.group(1)
        group = min(target, partner.get(target, target))
        if method is None:
            return stem, None, group, split_of.get(target)
        return f"{stem}_{self.methods[method]}", target, group, split_of.get(target)


_DFD_REAL = re.compile(r"^(\d{2})__([A-Za-z0-9_-]+)$")
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__([A-Za-z0-9_-]+?)__([A-Za-z0-9]+)$")


@READERS.register("dfd")
class DfdReader(FaceForensicsTree):
    """DFD (Google/Jigsaw's DeepFakeDetection in the FF++ download): paid actors, their scenes, their swaps."""

    name = "dfd"
    expected = f"{ORIGINALS}/actors or {MANIPULATED}/DeepFakeDetection folders (DFD)"
    real_source = "actors"
    methods = DFD_METHODS
    real_example = "01__exit_phone_room.mp4"
    fake_example = "01_02__exit_phone_room__YVGY8LOK.mp4: actor 01's scene with the face of actor 02"

    def parse(self, stem: str, method: str | None):
        match = (_DFD_REAL if method is None else _DFD_FAKE).match(stem)
        if match is None:
            return None
        actor = match.group(1)
        return stem, None if method is None else f"{actor}__{match.group(3)}", actor, None
