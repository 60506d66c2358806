"""Atomic writes and guarded deletes on a real folder tree."""

from __future__ import annotations

import os

import pytest

from core.files import OutsideRootError, atomic_path, remove_inside, write_json_atomic
from datasets.layout import DataLayout


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "x.json"
    write_json_atomic(target, {"b": 1, "a": 2})
    assert target.read_text() == '{"a": 2, "b": 1}'
    assert target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == '{"a": 2, "b": 1}'
    assert os.listdir(target.parent) == ["x.json"]


def test_remove_inside_refuses_anything_not_strictly_inside_its_root(tmp_path):
    root = tmp_path / "out"
    (root / "item").mkdir(parents=True)
    (root / "item" / "0_0.png").write_bytes(b"png")
    keep = tmp_path / "keep.txt"
    keep.write_text("outside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("outside")
    (root / "escape").symlink_to(outside)
    for target in (root, root / "..", root / ".", root / "item" / ".." / "..", root / "escape" / "victim.txt",
                   keep, tmp_path / "out2", "/"):
        with pytest.raises(OutsideRootError, match="is a bug"):
            remove_inside(root, target)
        with pytest.raises(OutsideRootError):
            with atomic_path(target, root) as tmp:
                tmp.write_text("never")
    assert keep.read_text() == "outside" and (outside / "victim.txt").read_text() == "outside"
    assert not list(tmp_path.rglob(".tmp*"))
    assert remove_inside(root, root / "escape")  # the link itself, not what it points to
    assert (outside / "victim.txt").is_file() and not (root / "escape").exists()
    assert remove_inside(root, root / "item") and not (root / "item").exists()
    assert not remove_inside(root, root / "item")  # nothing left to delete
    assert remove_inside(root, root / "...") is False  # a name of three dots is an ordinary name


def test_a_root_that_is_a_symlink_keeps_its_items_removable_but_not_its_parent(tmp_path):
    disk = tmp_path / "disk"
    (disk / "crops" / "abc").mkdir(parents=True)
    (disk / "crops" / "abc" / "0_0.png").write_bytes(b"png")
    (disk / "other_data.bin").write_bytes(b"precious")
    data = tmp_path / "data"
    data.mkdir()
    (data / "crops").symlink_to(disk / "crops")
    crops = DataLayout(data).crops_root
    for target in (crops / "..", crops, crops / "abc" / ".." / ".."):
        with pytest.raises(OutsideRootError):
            remove_inside(crops, target)
    with atomic_path(crops / "abc" / "10_0.png", crops) as tmp:
        tmp.write_bytes(b"png")
    assert (disk / "crops" / "abc" / "10_0.png").read_bytes() == b"png"
    assert remove_inside(crops, crops / "abc")
    assert not (disk / "crops" / "abc").exists()
    assert (disk / "other_data.bin").read_bytes() == b"precious" and (data / "crops").is_symlink()
