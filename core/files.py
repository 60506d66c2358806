"""Atomic writes, guarded deletes, path and name checks: how every command writes its outputs.

A file is written under a temp name next to its target and renamed into place only when complete
(``atomic_path``), so an interrupted run leaves nothing that looks like output; ``remove_stale_temps``
deletes what a killed run left. Every delete and overwrite of an output goes through ``guard_inside``
(``remove_inside``, ``atomic_path(..., root)``), which refuses a path outside its folder.
``path_problem`` says why a path is not the file or folder a command needs, ``name_problem`` why a name
cannot name a file of its own; ``stable_id_hash`` is the machine-independent hash that shards and folds
are drawn from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def stable_id_hash(text: str) -> int:
    """A hash of an id that is the same on every machine and run (shards and folds are drawn from it)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


_SEPARATORS = {"/", "\\", os.sep, os.altsep} - {None}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file of its own inside an output folder (a video id, a run name), as
    the end of a message ("is empty", "starts with a dot", ...); None when it can."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, a folder's own name"
    if name.startswith("."):
        return "starts with a dot (hidden and temp files do)"
    if any(sep in name for sep in _SEPARATORS) or "\0" in name:
        return "contains a path separator"
    return None


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


class OutsideRootError(RuntimeError):
    """A delete or overwrite aimed at a path outside the folder it belongs to: a bug, never bad input
    (inputs are checked when they are listed), so it is raised, not logged."""


def _checked_target(root: str | os.PathLike, target: str | os.PathLike) -> Path | None:
    """Where ``target`` really is (its folders' symlinks resolved, not its own last name: deleting a
    link deletes the link), or None unless that is strictly inside where ``root`` really is. The root
    may itself be a symlink (``crops/`` on a data disk): what counts is what lies below it."""
    try:
        real_root = Path(os.path.realpath(root))
        target = Path(target).absolute()  # not normalised: ".." is resolved below, after the links
        name = target.name
        # "a/.." keeps ".." as its name: resolve it too, it names a folder above
        real = Path(os.path.realpath(target)) if name in ("", ".", "..") else \
            Path(os.path.realpath(target.parent)) / name
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        return None
    return real if real_root in real.parents else None


def is_inside(root: str | os.PathLike, target: str | os.PathLike) -> bool:
    """``target`` lies strictly inside ``root`` once the symlinks of its folders are resolved."""
    return _checked_target(root, target) is not None


def guard_inside(root: str | os.PathLike, target: str | os.PathLike) -> Path:
    """``target`` as it really is (see ``is_inside``); OutsideRootError unless it is strictly inside
    ``root``. Every delete and overwrite of an output goes through here."""
    checked = _checked_target(root, target)
    if checked is None:
        raise OutsideRootError(f"refused to delete or overwrite {target}: it is not strictly inside {root} "
                               f"(which is {os.path.realpath(root)}), the only folder this step may change; "
                               f"this is a bug, please report it")
    return checked


def remove_inside(root: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Delete ``target`` (a file, a symlink: the link itself, or a whole folder) after ``guard_inside``
    allowed it; False when there was nothing to delete."""
    path = guard_inside(root, target)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def atomic_path(target: str | os.PathLike, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` only if the block succeeds.

    Temp names start with ``.tmp`` so that an interrupted run leaves nothing that looks like output,
    followed by the target's name (``.tmp.<name>.<random><suffix>``) so that a cleanup can tell
    whose temp file it is (see ``temp_target_name``). With ``root``, a target not strictly inside it
    is refused (``guard_inside``) before anything is written.
    """
    target = Path(target) if root is None else guard_inside(root, target)
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


def write_bytes_atomic(target: str | os.PathLike, data: bytes, root: str | os.PathLike | None = None) -> None:
    with atomic_path(target, root) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str, root: str | os.PathLike | None = None) -> None:
    write_bytes_atomic(target, text.encode("utf-8"), root)


def write_json_atomic(target: str | os.PathLike, obj, root: str | os.PathLike | None = None) -> None:
    write_text_atomic(target, json.dumps(obj, sort_keys=True), root)


def remove_stale_temps(folder: Path, owned: Callable[[str], bool] | None = None) -> int:
    """Delete temp files left by a killed run in ``folder`` (only those whose target name ``owned``
    accepts, so that concurrent shards never delete each other's files in flight). Folders are never
    temp files: left alone."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        target = temp_target_name(path.name)
        if target is not None and (owned is None or owned(target)) and (path.is_symlink() or not path.is_dir()):
            removed += remove_inside(folder, path)
    return removed
