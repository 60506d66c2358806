"""One run at a time, and a run that stops when it is told to: locks, signals, worker processes.

**Locks.** A run that writes into a folder holds an exclusive lock file there for as long as it lasts
(``filelock.FileLock``: ``fcntl.flock`` on Unix). The operating system drops such a lock when its process
ends in any way, kill -9 and crashes included, so the lock of a dead run never blocks the next one: it is
simply taken over, nothing has to be deleted by hand. Next to the lock, ``<lock>.owner.json`` records who
holds it (pid, host, start time, command), so that a refused run can name the running one.

Preprocessing locks DATA_ROOT (``DATA_ROOT/.locks/``): a run without ``--shard`` holds
``preprocess.lock``, shard K of N holds ``preprocess.shard-K-of-N.lock``. The shards of one split run
side by side (on one machine or several sharing DATA_ROOT); a run without ``--shard`` conflicts with any
shard, and shards split with different N conflict with each other (their items overlap). A run holds
its own lock first and then checks the locks it conflicts with, so of two conflicting runs started at
the same moment at least one is refused. Training locks one run name in its weights folder
(``WEIGHTS_DIR/.locks/<name>.lock``): other seeds may train into the same folder at the same time.

**Signals.** A command-line run turns SIGTERM into :class:`Stopped` (SIGINT already raises
KeyboardInterrupt), so that it unwinds: worker processes are stopped, locks released, temp files of
the writes in flight removed. Worker processes end with their parent even when it is killed with
SIGKILL (:func:`exit_with_parent`).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

# How long a run waits for a lock before it is refused. A lock is held for a whole run or, by a run
# that checks whether it conflicts with this one, for an instant: the wait outlasts only the latter.
LOCK_WAIT_S = 3.0
LOCKS_FOLDER = ".locks"
OWNER_SUFFIX = ".owner.json"


class LockError(Exception):
    """This run cannot take its lock: another run holds it, or the lock file cannot be made; the message
    names the lock, the running process and what to do."""


class Stopped(BaseException):
    """SIGTERM asked this process to stop (a BaseException, like KeyboardInterrupt, so that no handler of
    bad input takes it for a failed item)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# ---- locks ---------------------------------------------------------------------------------------
def owner_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + OWNER_SUFFIX)


def _write_owner(lock_path: Path) -> None:
    from core.files import write_json_atomic

    write_json_atomic(owner_path(lock_path), {
        "pid": os.getpid(), "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv))})


def describe_holder(lock_path: Path) -> str:
    """Who holds ``lock_path``, from its owner file: "pid 12 on host-a since ... (command ...)"."""
    try:
        owner = json.loads(owner_path(lock_path).read_text())
        return (f"pid {owner['pid']} on {owner['host']} since {owner['started']} "
                f"(command: {owner['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return f"a process that left no readable {owner_path(lock_path).name} (it may just be starting)"


def _refusal(lock_path: Path, what: str, advice: str) -> LockError:
    return LockError(f"{what} is already running: {lock_path} is held by {describe_holder(lock_path)}; "
                     f"{advice}")


def _acquire(lock: FileLock, lock_path: Path, what: str, advice: str) -> None:
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=LOCK_WAIT_S)
    except Timeout:
        raise _refusal(lock_path, what, advice) from None
    except OSError as exc:
        raise LockError(f"cannot create the lock file {lock_path} ({exc.strerror or exc}); the folder must be "
                        f"writable") from None


def _lock(path: Path) -> FileLock:
    # one instance per file in this process (is_singleton), so that a run which already holds a lock
    # (the pipeline, around its stages) takes it again instead of waiting on itself
    return FileLock(path, is_singleton=True, thread_local=False)


@contextmanager
def hold_lock(lock_path: str | os.PathLike, what: str, advice: str,
              conflicting: Callable[[], Sequence[Path]] = tuple) -> Iterator[None]:
    """Hold ``lock_path`` while the block runs; raise LockError (the message names the holder) when
    another process holds it or one of the ``conflicting()`` locks. Reentrant within a process."""
    lock_path = Path(lock_path)
    lock = _lock(lock_path)
    outermost = not lock.is_locked
    _acquire(lock, lock_path, what, advice)
    try:
        if outermost:
            for other_path in conflicting():
                other = _lock(other_path)
                _acquire(other, other_path, what, advice)  # held elsewhere: refused
                other.release()
            _write_owner(lock_path)
        yield
    finally:
        if outermost:
            owner_path(lock_path).unlink(missing_ok=True)  # before the release: a next holder writes its own
        lock.release()


_SHARD_LOCK = re.compile(r"^preprocess\.shard-(\d+)-of-(\d+)\.lock$")
PREPROCESS_ADVICE = ("wait for it to end or stop it (kill PID: it stops its workers, and a rerun redoes only the "
                     "items that were in flight). The shards of one --shard K/N split run side by side; the run "
                     "without --shard (it writes folds.csv) runs after all of them")


def preprocessing_lock(data_root: str | os.PathLike, shard: tuple[int, int] | None):
    """The lock of a preprocessing run over DATA_ROOT (a context manager; see the module docstring)."""
    folder = Path(data_root) / LOCKS_FOLDER

    def shard_locks() -> list[Path]:
        return sorted(p for p in folder.glob("preprocess.shard-*.lock") if _SHARD_LOCK.match(p.name))

    if shard is None:
        return hold_lock(folder / "preprocess.lock", f"another preprocessing run of {data_root}",
                         PREPROCESS_ADVICE, shard_locks)
    k, n = shard

    def conflicting() -> list[Path]:
        other_splits = [p for p in shard_locks() if int(_SHARD_LOCK.match(p.name).group(2)) != n]
        return [folder / "preprocess.lock"] + other_splits

    return hold_lock(folder / f"preprocess.shard-{k}-of-{n}.lock",
                     f"a conflicting preprocessing run of {data_root} (this is --shard {k}/{n})",
                     PREPROCESS_ADVICE, conflicting)


# ---- signals -------------------------------------------------------------------------------------
def _raise_stopped(signum, _frame) -> None:
    raise Stopped(signum)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises Stopped in the main thread while the block runs (command-line entry points only:
    it changes this process's signal handling)."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """A SIGTERM or Ctrl-C that arrives while the block runs takes effect when the block ends, through
    the handler that was in place: writes that belong together (an epoch's checkpoint, its ``_last``
    copy, its ``_best`` copy) are all done or, when the stop came before the block, none. Outside the
    main thread the block runs as it is (only the main thread handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, _frame: held.append(received))
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


def stop_exit_code(exc: BaseException) -> int:
    """The shell's code for a process ended by a signal: 128 + its number (143 SIGTERM, 130 Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)


# ---- worker processes ----------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


def exit_with_parent(parent_pid: int) -> None:
    """Make this worker process end as soon as its parent ends, however it ends.

    On Linux the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG): immediate, and it
    works while the worker is busy in native code that holds the GIL. A worker has nothing to clean up
    (its writes go to temp files that the next run removes). Elsewhere a daemon thread polls the parent
    pid. The kernel signal follows the thread that started the worker: the process pool starts its
    workers from the thread that submits work, which lives as long as the pool.
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(PARENT_POLL_S)
            os._exit(1)

        threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before this took effect
        os._exit(1)
