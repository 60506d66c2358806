"""A training run's files in its weights folder: the run's name, the check that a new run replaces nothing
unasked, retention of epoch files, temp files of a killed save, and the lock one trainer of a run holds.

A run ``<name>`` writes ``<name>_<epoch>``, ``<name>_last``, ``<name>_best`` and ``<name>_args.json``
(``models.checkpoints`` builds and parses those names); nothing here touches another run's files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from core.files import atomic_path, name_problem, remove_inside
from core.run_control import LOCKS_FOLDER, hold_lock
from models.checkpoints import (
    checkpoint_path,
    parse_checkpoint_name,
    read_checkpoint,
    run_files,
    run_name,
    save_error,
)

log = logging.getLogger("train_classifier")


class RunExistsError(Exception):
    """The weights folder already holds the run this call would write; the message says how to go on."""


def checked_run_name(config: dict, seed: int, prefix: str) -> str:
    """The run's name, which names its files in the weights folder and its log folder: ValueError when it
    could not (a ``--prefix`` holding a path separator or starting with a dot)."""
    name = run_name(config, seed, prefix)
    problem = name_problem(name)
    if problem:
        raise ValueError(f"the run name {name!r} (--prefix {prefix!r} + network_encoder_seed) {problem}; it names "
                         f"files in --output-dir and a folder in --log-dir, so pass a plain --prefix such as "
                         f"'trial1_' (to write elsewhere, use --output-dir / --log-dir)")
    return name


def check_run_folder(weights_dir: Path, name: str, resume_epoch: int | None, overwrite: bool) -> list[Path]:
    """The files of run ``name`` that this call would overwrite, or RunExistsError when there are any and
    ``overwrite`` is not set. A new run (``resume_epoch`` None) overwrites every file of that name; a
    resumed one the epochs after ``resume_epoch``."""
    existing = [p for p in run_files(weights_dir, name) if parse_checkpoint_name(p.name).which != "args"]
    if resume_epoch is None:
        clashing = existing
    else:
        clashing = [p for p in existing if isinstance(parse_checkpoint_name(p.name).which, int)
                    and parse_checkpoint_name(p.name).which > resume_epoch]
    if clashing and not overwrite:
        if resume_epoch is None:
            raise RunExistsError(
                f"{weights_dir} already holds a run named {name} ({', '.join(p.name for p in existing)}); "
                f"continue it with --resume {checkpoint_path(weights_dir, name, 'last')} (train.sh --resume), "
                f"start it again with --overwrite (its files are deleted), or write elsewhere "
                f"(--output-dir / WEIGHTS_DIR, or --prefix)")
        later = sorted(parse_checkpoint_name(p.name).which for p in clashing)
        raise RunExistsError(
            f"{weights_dir} holds {name} up to epoch {later[-1]}; resuming after epoch {resume_epoch} would "
            f"overwrite epochs {later[0]}-{later[-1]}; resume from {checkpoint_path(weights_dir, name, 'last')}, "
            f"or pass --overwrite to drop the later epochs")
    return clashing


def drop_replaced(weights_dir: Path, name: str, replaced: list[Path], resume_epoch: int | None) -> None:
    """--overwrite: delete the files the new run replaces, so that no old _best or epoch is mixed with its
    files. Resuming an earlier epoch also drops a _best made after that epoch."""
    doomed = list(replaced)
    best = checkpoint_path(weights_dir, name, "best")
    if resume_epoch is not None and best.is_file() and int(read_checkpoint(best).get("epoch", -1)) > resume_epoch:
        doomed.append(best)
    for path in doomed:
        remove_inside(weights_dir, path)
    log.warning("%s: --overwrite: deleted %s", name, ", ".join(p.name for p in doomed))


def copy_atomic(src: Path, dst: Path) -> None:
    """``src`` copied to ``dst`` through a temp file; a failed write (a full disk) says so and leaves ``dst``
    as it was."""
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    except OSError as exc:
        raise save_error(dst, exc, src.stat().st_size) from exc


def prune_epochs(weights_dir: Path, name: str, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` ``<name>_<epoch>`` files (None: keep all); ``_best``, ``_last``
    and other runs' files are never touched. Returns the deleted paths."""
    if keep is None:
        return []
    epochs = sorted((parse_checkpoint_name(p.name).which, p) for p in run_files(weights_dir, name)
                    if isinstance(parse_checkpoint_name(p.name).which, int))
    doomed = [p for _, p in epochs[:max(len(epochs) - keep, 0)]]
    for path in doomed:
        remove_inside(weights_dir, path)
    return doomed


def remove_stale_run_temps(weights_dir: Path, name: str) -> int:
    """Temp files a killed save of run ``name`` left (``.tmp.<name>_last.*``); other runs' are left alone,
    they may be in flight."""
    from core.files import remove_stale_temps

    def owned(target: str) -> bool:
        parsed = parse_checkpoint_name(target)
        return parsed is not None and parsed.run == name

    return remove_stale_temps(weights_dir, owned)


def run_lock(weights_dir: Path, name: str):
    """The lock rank 0 holds while it trains run ``name`` into ``weights_dir`` (a context manager): a
    second trainer of that run there is refused with a LockError naming the first; other runs (seeds)
    may train into the same folder at the same time."""
    return hold_lock(weights_dir / LOCKS_FOLDER / f"{name}.lock", f"a trainer of {name} in {weights_dir}",
                     "wait for it to end or stop it (kill its pid; train.sh --resume then continues after its "
                     "last finished epoch), or train into another folder (WEIGHTS_DIR / --output-dir)")
