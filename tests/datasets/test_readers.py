"""The dataset-reader seam: the registry, detection, ids no two readers may share, and a toy reader
registered in one line that runs through preprocessing and gives a predictor its labels."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from datasets import READERS
from datasets.dfdc import DfdcReader
from datasets.layout import DataLayout
from datasets.readers import (
    FAKE,
    REAL,
    FolderLabels,
    LayoutProblem,
    ReaderOptions,
    VideoEntry,
    build_reader,
    chosen_readers,
    folder_labels,
    scan_root,
)


class ToyReader:
    """A made-up layout: ``toy/real/<id>.mp4`` and ``toy/fake/<original>-<n>.mp4``."""

    name = "toy"
    expected = "toy/real and toy/fake folders"

    def __init__(self, options: ReaderOptions | None = None):
        self.options = options

    def found_in(self, root: Path) -> bool:
        return (Path(root) / "toy" / "real").is_dir()

    def _entry(self, path: Path) -> VideoEntry:
        if path.parent.name == "real":
            return VideoEntry(f"toy_{path.stem}", path, REAL, None, None, identity_group=f"toy_{path.stem}",
                              dataset="toy")
        original = f"toy_{path.stem.split('-')[0]}"
        return VideoEntry(f"toy_{path.stem}", path, FAKE, original, None, identity_group=original,
                          method="toyswap", dataset="toy")

    def scan(self, root: Path) -> tuple[list[VideoEntry], list[LayoutProblem]]:
        paths = sorted((Path(root) / "toy").glob("*/*.mp4"))
        return sorted((self._entry(p) for p in paths), key=lambda e: e.video_id), []

    def folder_labels(self, folder: Path) -> FolderLabels | None:
        if Path(folder).parent.name != "toy":
            return None
        return FolderLabels({p.name: self._entry(p) for p in sorted(Path(folder).glob("*.mp4"))}, Path(folder))


@pytest.fixture
def toy_reader():
    READERS.register("toy", ToyReader)
    yield ToyReader
    READERS.unregister("toy")


def _sample_pairs(sample_root: Path, n: int) -> list[tuple[Path, list[Path]]]:
    """``n`` reals of the sample set with their fakes."""
    part = sample_root / "dfdc_train_part_0"
    metadata = json.loads((part / "metadata.json").read_text())
    reals = sorted(name for name, info in metadata.items() if info["label"] == "REAL")[:n]
    return [(part / real, sorted(part / name for name, info in metadata.items() if info.get("original") == real))
            for real in reals]


def test_the_readers_are_registered_and_an_unknown_name_lists_the_known_ones(tmp_path):
    assert READERS.get("dfdc") is DfdcReader
    assert set(READERS.names()) >= {"dfdc", "ffpp", "dfd", "celebdf"}
    with pytest.raises(ValueError, match="unknown dataset reader 'nope'; known: .*dfdc"):
        build_reader("nope")
    assert chosen_readers(tmp_path) == []
    (tmp_path / "dfdc_train_part_0").mkdir()
    assert [r.name for r in chosen_readers(tmp_path)] == ["dfdc"]


def test_a_toy_reader_runs_through_preprocessing_and_labels_a_test_folder(toy_reader, sample_root, tmp_path):
    from preprocessing.pipeline import preprocess

    root = tmp_path / "data"
    (root / "toy" / "real").mkdir(parents=True)
    (root / "toy" / "fake").mkdir()
    for real, fakes in _sample_pairs(sample_root, 2):
        os.symlink(real, root / "toy" / "real" / f"{real.stem}.mp4")
        for i, fake in enumerate(fakes[:1]):
            os.symlink(fake, root / "toy" / "fake" / f"{real.stem}-{i}.mp4")
    assert [r.name for r in chosen_readers(root)] == ["toy"]
    entries, problems = DataLayout(root).scan()
    assert problems == [] and len(entries) == 4 and all(e.video_id.startswith("toy_") for e in entries)

    summaries = preprocess(root, workers=1, progress=False)
    assert all(s.failed == 0 for s in summaries), [s.failures for s in summaries]
    with (root / "folds.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["video"] for r in rows} == {e.video_id for e in entries}
    for row in rows:  # a fake is cut with its original's boxes and shares its original's fold
        entry = next(e for e in entries if e.video_id == row["video"])
        assert row["original"] == entry.source_id and row["label"] == str(int(entry.is_fake))
    folds = {r["original"]: r["fold"] for r in rows}
    assert all(r["fold"] == folds[r["original"]] for r in rows)

    labels = folder_labels(root / "toy" / "fake")
    assert labels is not None and {e.label for e in labels.entries.values()} == {FAKE}
    assert {e.method for e in labels.entries.values()} == {"toyswap"}
    assert folder_labels(root / "toy" / "fake", dataset="dfdc") is None  # a named reader that does not know it


def test_an_id_two_readers_both_give_is_used_by_neither(toy_reader, tmp_path):
    (tmp_path / "toy" / "real").mkdir(parents=True)
    (tmp_path / "toy" / "real" / "a.mp4").write_bytes(b"x")
    part = tmp_path / "dfdc_train_part_0"
    part.mkdir()
    for name in ("toy_a.mp4", "b.mp4"):
        (part / name).write_bytes(b"x")
    (part / "metadata.json").write_text(json.dumps({"toy_a.mp4": {"label": "REAL"}, "b.mp4": {"label": "REAL"}}))
    entries, problems = scan_root(tmp_path)
    assert [e.video_id for e in entries] == ["b"]
    assert [p.item for p in problems] == ["toy_a"]
    assert "given by the dfdc and the toy readers" in problems[0].error and "--dataset" in problems[0].error
    entries, problems = scan_root(tmp_path, dataset="toy")
    assert [e.video_id for e in entries] == ["toy_a"] and problems == []
