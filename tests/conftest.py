"""Shared fixtures: a tiny generated DFDC-style dataset, and the same data run through preprocessing.

Both are built once per test session (they are the slow part) and must be treated as read-only;
tests that change files copy them first (``copy_tree``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SMALL = REPO_ROOT.parent / "shared" / "data" / "real_small"

# The tiny set every test shares: 2 parts x 2 reals x 2 fakes, 2 s at 10 fps (frames 0 and 10 are cropped).
TINY_SET = dict(parts=2, reals_per_part=2, seconds=2.0, fps=10, size=(320, 240), seed=0, test_videos=4)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A generated DATA_ROOT (dfdc_train_part_*/ + test_videos/). Read-only."""
    from preprocessing.make_sample_dataset import generate_sample_dataset

    root = tmp_path_factory.mktemp("sample") / "data"
    generate_sample_dataset(root, **TINY_SET)
    return root


@pytest.fixture(scope="session")
def preprocessed_root(sample_root, tmp_path_factory) -> Path:
    """``sample_root`` copied and run through every preprocessing stage. Read-only."""
    from preprocessing.pipeline import preprocess

    root = copy_tree(sample_root, tmp_path_factory.mktemp("preprocessed") / "data")
    preprocess(root, workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def real_small_or_none() -> Path | None:
    """The real clips when present, else None (for tests that use them only as extra inputs)."""
    return REAL_SMALL if (REAL_SMALL / "dfdc_train_part_0" / "metadata.json").is_file() else None


@pytest.fixture(scope="session")
def real_small() -> Path:
    """The real clips in ../shared/data/real_small; tests using it skip when it is absent."""
    if not (REAL_SMALL / "dfdc_train_part_0" / "metadata.json").is_file():
        pytest.skip(f"real clips not present at {REAL_SMALL}")
    return REAL_SMALL
