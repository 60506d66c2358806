"""Celeb-DF (v2) as it ships:

    ROOT/Celeb-real/idA_NNNN.mp4            celebrity A's video NNNN (real)
    ROOT/YouTube-real/NNNNN.mp4             other YouTube videos (real)
    ROOT/Celeb-synthesis/idA_idB_NNNN.mp4   idA_NNNN.mp4 with the face of celebrity B (fake)
    ROOT/List_of_testing_videos.txt         the official test set, lines "<label> <folder>/<file>",
                                            label 1 = real, 0 = fake

A video on the test list is in the ``test`` split, every other one in none (Celeb-DF names no
validation set): the folds deal those out by identity group. The swaps join nearly every celebrity to
every other, so a group is the target celebrity (her videos and the fakes made from them; the face
swapped in may be in another fold, as it is across Celeb-DF's own test list); a YouTube-real video is
a group of its own. Ids: ``celebdf_id0_0000``, ``celebdf_id0_id16_0000``, ``celebdf_00170``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from datasets.readers import FAKE, READERS, REAL, FolderLabels, LayoutProblem, ReaderOptions, VideoEntry

NAME = "celebdf"
FOLDERS = {"Celeb-real": REAL, "YouTube-real": REAL, "Celeb-synthesis": FAKE}
TEST_LIST = "List_of_testing_videos.txt"
TEST_LIST_LABELS = {"1": REAL, "0": FAKE}  # Celeb-DF's convention: 1 is real
_NAMES = {"Celeb-real": re.compile(r"^(id\d+)_(\d+)$"), "YouTube-real": re.compile(r"^(\d+)$"),
          "Celeb-synthesis": re.compile(r"^(id\d+)_id\d+_(\d+)$")}
_EXAMPLES = {"Celeb-real": "id0_0000.mp4", "YouTube-real": "00170.mp4", "Celeb-synthesis": "id0_id16_0000.mp4"}


def read_test_list(root: Path) -> tuple[set[str], list[LayoutProblem]]:
    """The ``<folder>/<file>`` paths on the official test list, and the problems with its lines (a line
    that is not "<label> <folder>/<file>", or whose label contradicts its folder, is left out)."""
    path = Path(root) / TEST_LIST
    if not path.is_file():
        return set(), []
    listed: set[str] = set()
    problems: list[LayoutProblem] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        folder = fields[-1].split("/")[0]
        if len(fields) != 2 or fields[0] not in TEST_LIST_LABELS or folder not in FOLDERS:
            problems.append(LayoutProblem(f"{TEST_LIST}:{number}", f"{path}, line {number}: {line.strip()!r} is not "
                                                                   f"'<1|0> <folder>/<file>' (1 = real, 0 = fake, "
                                                                   f"folder one of {', '.join(FOLDERS)}); it is left "
                                                                   f"out of the test split"))
        elif TEST_LIST_LABELS[fields[0]] != FOLDERS[folder]:
            problems.append(LayoutProblem(f"{TEST_LIST}:{number}", f"{path}, line {number}: label {fields[0]} says "
                                                                   f"{TEST_LIST_LABELS[fields[0]]} but {folder} holds "
                                                                   f"{FOLDERS[folder]} videos; it is left out of the "
                                                                   f"test split"))
        else:
            listed.add(fields[1])
    return listed, problems


def entry_of(path: Path, folder: str, test: set[str]) -> VideoEntry | LayoutProblem:
    """The entry of one video of ``folder`` (its name under the root)."""
    match = _NAMES[folder].match(path.stem)
    if match is None:
        return LayoutProblem(f"{NAME}:{folder}/{path.name}", f"{path} is not named like a Celeb-DF video of {folder} "
                                                              f"({_EXAMPLES[folder]}); it is left out")
    fake = FOLDERS[folder] == FAKE
    group = f"{NAME}_{match.group(1)}" if folder != "YouTube-real" else f"{NAME}_{path.stem}"
    return VideoEntry(f"{NAME}_{path.stem}", path, FOLDERS[folder],
                      f"{NAME}_{match.group(1)}_{match.group(2)}" if fake else None, None,
                      identity_group=group, dataset=NAME,
                      split="test" if f"{folder}/{path.name}" in test else None)


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mp4" and not p.name.startswith("."))


@READERS.register(NAME)
class CelebDfReader:
    """Celeb-DF v2: Celeb-real, YouTube-real, Celeb-synthesis and the official test list."""

    name = NAME
    expected = f"{', '.join(FOLDERS)} folders (Celeb-DF)"

    def __init__(self, options: ReaderOptions | None = None):
        self.options = options or ReaderOptions()

    def found_in(self, root: Path) -> bool:
        return any((Path(root) / folder).is_dir() for folder in FOLDERS)

    def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        root = Path(root)
        test, problems = read_test_list(root)
        found = []
        for folder in (f for f in FOLDERS if (root / f).is_dir()):
            for path in _videos(root / folder):
                entry = entry_of(path, folder, test)
                (found if isinstance(entry, VideoEntry) else problems).append(entry)
        present = {f"{e.path.parent.name}/{e.path.name}" for e in found}
        problems += [LayoutProblem(f"{NAME}:{name}", f"{root / TEST_LIST} lists {name}, which is not in {root}; the "
                                                     f"test split goes without it")
                     for name in sorted(test - present)]
        originals = {e.video_id for e in found if not e.is_fake}
        problems += [LayoutProblem(e.video_id, f"fake {e.path}: its original {root / 'Celeb-real'}/"
                                               f"{e.original_id[len(NAME) + 1:]}.mp4 is missing; it is left out")
                     for e in found if e.is_fake and e.original_id not in originals]
        return sorted(found, key=lambda e: e.video_id), problems

    def folder_labels(self, folder: Path) -> FolderLabels | None:
        folder = Path(os.path.abspath(folder))
        if folder.name not in FOLDERS:
            return None
        test, _ = read_test_list(folder.parent)
        entries = {p.name: entry_of(p, folder.name, test) for p in _videos(folder)}
        return FolderLabels({n: e for n, e in entries.items() if isinstance(e, VideoEntry)}, folder.parent)
