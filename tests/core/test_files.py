"""Atomic writes."""

from __future__ import annotations

import os

import pytest

from core.files import atomic_path, write_json_atomic


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
