"""Atomic writes, path checks and temp-file cleanup: how every command writes its outputs.

A file is written under a temp name next to its target and renamed into place only when complete
(``atomic_path``), so an interrupted run leaves nothing that looks like output; ``remove_stale_temps``
deletes what a killed run left. ``path_problem`` says why a path is not the file or folder a command
needs; ``stable_id_hash`` is the machine-independent hash that shards and folds are drawn from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def stable_id_hash(text: str) -> int:
    """A hash of an id that is the same on every machine and run (shards and folds are drawn from it)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def path_problem(path: str | os.PathLike, want: str = "file") -> str | None:
    """Why ``path`` is not an existing file (``want="file"``) or folder (``want="folder"``), as the end of
    a message ("does not exist", "is a folder", "is a file"); None when it is what is wanted."""
    path = Path(path)
    if want not in ("file", "folder"):
        raise ValueError(f"want must be 'file' or 'folder', not {want!r}")
    if not path.exists():
        return "does not exist"
    if want == "file" and path.is_dir():
        return "is a folder"
    if want == "folder" and not path.is_dir():
        return "is a file"
    return None


# ---- atomic writes -------------------------------------------------------------------------------
TEMP_PREFIX = ".tmp."
# ".tmp.<target name>.<8 random chars of mkstemp><target suffix>"
_TEMP_NAME = re.compile(r"^\.tmp\.(.+)\.[a-z0-9_]{8}(\.[^.]*)?$")


def temp_target_name(temp_name: str) -> str | None:
    """The target file name of a temp file made by ``atomic_path``; None for any other name."""
    match = _TEMP_NAME.match(temp_name)
    if not match or not match.group(1).endswith(match.group(2) or ""):
        return None
    return match.group(1)


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` only if the block succeeds.

    Temp names start with ``.tmp`` so that an interrupted run leaves nothing that looks like output,
    followed by the target's name (``.tmp.<name>.<random><suffix>``) so that a cleanup can tell
    whose temp file it is (see ``temp_target_name``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); outputs are shared data (Docker volumes, other users)
    os.chmod(tmp, 0o644)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj) -> None:
    write_text_atomic(target, json.dumps(obj, sort_keys=True))


def remove_stale_temps(folder: Path, owned: Callable[[str], bool] | None = None) -> int:
    """Delete temp files left by a killed run in ``folder`` (only those whose target name ``owned``
    accepts, so that concurrent shards never delete each other's files in flight)."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        target = temp_target_name(path.name)
        if target is not None and (owned is None or owned(target)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
