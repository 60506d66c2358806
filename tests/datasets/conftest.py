"""Dataset trees as the datasets ship them, made of links to real clips: FF++'s videos from
../shared/data/ffpp_train when present, else the generated sample set's (a fake keeps its original)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import FFPP_TRAIN

METHOD_FOLDERS = {"DF": "Deepfakes", "F2F": "Face2Face", "FS": "FaceSwap", "FSH": "FaceShifter", "NT": "NeuralTextures"}
# three FF++ pairs of ffpp_train with fakes both ways: (target, source, method codes)
FFPP_PAIRS = [("033", "097", ("DF", "F2F")), ("210", "241", ("DF", "F2F")), ("183", "253", ("DF", "FS", "NT"))]
# where the fixtures put them in the official split (the FaceForensics pair lists): train, val, test
SPLIT_PAIRS = {"train": ("033", "097"), "val": ("720", "672"), "test": ("953", "974")}

# a pair of clips: two reals, and the fakes of each as (method folder, path)
ClipPair = tuple[Path, Path, list[tuple[str, Path]], list[tuple[str, Path]]]


def _ffpp_train_pairs() -> list[ClipPair]:
    part = FFPP_TRAIN / "dfdc_train_part_0"
    return [(part / f"{a}.mp4", part / f"{b}.mp4",
             [(METHOD_FOLDERS[m], part / f"{a}_{b}_{m}.mp4") for m in methods],
             [(METHOD_FOLDERS[m], part / f"{b}_{a}_{m}.mp4") for m in methods]) for a, b, methods in FFPP_PAIRS]


def _sample_pairs(sample_root: Path) -> list[ClipPair]:
    """The generated set's 4 reals as pairs (the third pair reuses the first's clips), each fake given a method."""
    reals: list[tuple[Path, list[Path]]] = []
    for part in sorted(sample_root.glob("dfdc_train_part_*")):
        metadata = json.loads((part / "metadata.json").read_text())
        for name in sorted(n for n, info in metadata.items() if info["label"] == "REAL"):
            reals.append((part / name, sorted(part / n for n, i in metadata.items() if i.get("original") == name)))
    methods = ["Deepfakes", "Face2Face", "FaceSwap"]
    pairs = [(reals[i][0], reals[i + 1][0], list(zip(methods, reals[i][1])), list(zip(methods, reals[i + 1][1])))
             for i in (0, 2)]
    return pairs + [pairs[0]]


@pytest.fixture(scope="session")
def clip_pairs(request) -> tuple[list[ClipPair], bool]:
    """(three pairs of clips, whether they are real FF++ video)."""
    if (FFPP_TRAIN / "dfdc_train_part_0" / "metadata.json").is_file():
        return _ffpp_train_pairs(), True
    return _sample_pairs(request.getfixturevalue("sample_root")), False


def _link(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, target)


def make_ffpp_tree(root: Path, pairs: list[ClipPair], compression: str = "c23") -> Path:
    """FF++'s official tree: the pairs become the train, val and test pairs of ``SPLIT_PAIRS``."""
    for (real_a, real_b, fakes_a, fakes_b), (a, b) in zip(pairs, SPLIT_PAIRS.values()):
        originals = root / "original_sequences" / "youtube" / compression / "videos"
        _link(originals / f"{a}.mp4", real_a)
        _link(originals / f"{b}.mp4", real_b)
        for target, source, fakes in ((a, b, fakes_a), (b, a, fakes_b)):
            for method, path in fakes:
                _link(root / "manipulated_sequences" / method / compression / "videos" / f"{target}_{source}.mp4", path)
    return root


# Celeb-DF: pair i becomes celebrities id(2i) and id(2i+1); the third pair and a YouTube video are the test list
CELEBDF_TEST_LIST = ["1 Celeb-real/id4_0000.mp4", "1 Celeb-real/id5_0000.mp4", "0 Celeb-synthesis/id4_id5_0000.mp4",
                     "0 Celeb-synthesis/id5_id4_0000.mp4", "1 YouTube-real/00000.mp4"]


def make_celebdf_tree(root: Path, pairs: list[ClipPair]) -> Path:
    for i, (real_a, real_b, fakes_a, fakes_b) in enumerate(pairs):
        a, b = f"id{2 * i}", f"id{2 * i + 1}"
        _link(root / "Celeb-real" / f"{a}_0000.mp4", real_a)
        _link(root / "Celeb-real" / f"{b}_0000.mp4", real_b)
        _link(root / "Celeb-synthesis" / f"{a}_{b}_0000.mp4", fakes_a[0][1])
        _link(root / "Celeb-synthesis" / f"{b}_{a}_0000.mp4", fakes_b[0][1])
    _link(root / "YouTube-real" / "00000.mp4", pairs[0][0])
    (root / "List_of_testing_videos.txt").write_text("\n".join(CELEBDF_TEST_LIST) + "\n")
    return root
