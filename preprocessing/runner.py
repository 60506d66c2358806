"""The one runner every preprocessing stage uses: items, skipping, sharding, a process pool, logs.

A stage is a list of work items (one per original video, usually) and a function that turns one
item into output files. The runner

* checks before any work that it can write every output folder of the stage (else LayoutError);
* skips items that are complete: a small marker ``progress/<stage>/<item>.json`` is written *last*,
  after every output of the item was renamed into place, and lists those outputs, the options that
  shaped them and a fingerprint of every input the item read (see :func:`fingerprint`); an item is
  complete when its marker has this format, the same options, the same input fingerprints and every
  listed output is still on disk. So a changed input video, a changed upstream output (new boxes,
  recut crops) or changed options redo the item, and through its new outputs every later stage's
  item made from them. Before an item is (re)done its marker and its own output folders are removed,
  so no file of an older run survives next to the new ones. Killing a run at any moment therefore
  loses at most the items in flight, and a rerun redoes exactly those (outputs are deterministic,
  so the bytes match);
* keeps ``--shard K/N`` items (by a hash of the item id, so every machine agrees without talking);
* runs the rest in a process pool (one model per worker process, created once) or in-process for
  ``workers=1``;
* appends one JSON line per failed item (``kind: error``) and per warning of a finished item (``kind:
  warning``, e.g. a video that decodes only partly) to ``logs/<stage>.jsonl`` and counts done /
  skipped / failed / warnings. An item that reports no output is never done.

Only :func:`run_cli` prints; everything else returns values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.files import (
    TEMP_PREFIX,
    OutsideRootError,
    remove_inside,
    remove_stale_temps,
    stable_id_hash,
    write_json_atomic,
)
from core.run_control import (
    LockError,
    Stopped,
    exit_with_parent,
    preprocessing_lock,
    stop_exit_code,
    stop_on_sigterm,
)
from datasets.layout import DataLayout, LayoutError
from datasets.readers import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    READERS,
    LayoutProblem,
    ReaderOptions,
    VideoEntry,
)


class ItemError(Exception):
    """An item could not be (fully) processed; the message names the files and what to do."""


@dataclass
class ItemResult:
    """What ``Stage.process`` may return instead of a plain list of outputs: the outputs plus
    warnings about an item that is nevertheless done (logged and shown, the item is not redone)."""

    outputs: list[Path]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: ``key`` names it (marker, log line, shard) and ``videos`` are its inputs."""

    key: str
    videos: tuple[VideoEntry, ...] = ()

    @property
    def n_videos(self) -> int:
        return max(1, len(self.videos))


@dataclass(frozen=True)
class Stage:
    """What a stage module hands to the runner (module-level functions, so it pickles for workers).

    ``list_items(layout, options) -> (items, problems)``; ``process(layout, item, state, options) ->
    output paths`` (or an ItemResult); ``make_state(options, threads) -> state`` runs once per worker
    process (models). ``option_names`` are the options that change the outputs (recorded in the
    markers). ``added_options`` (name -> default) are such options added after markers were first
    written: recorded only when not at their default, so the markers of earlier runs, which lack
    them, stay valid for a run at the default. ``inputs(layout, item, options)`` are the files and folders an item reads (videos,
    upstream outputs), fingerprinted in its marker. ``item_outputs(layout, item)`` are the files and
    folders that belong to one item alone: removed before the item is (re)done. ``output_dirs(layout)``
    are the folders the stage writes into (checked writable before any work). ``flat_dirs(layout)``
    are shared folders holding one file per item (stale temp files there are removed at start, for
    this shard's items only). ``always_run`` stages have no markers.
    ``prefetch(layout, item, state, options)``, when given, is called with the item a process will
    work on next, before it starts the current one (to decode the next video in the background);
    such stages get their items in small ordered batches per worker process.
    ``version`` is raised when a change of the stage's code changes what it writes: from 2 on it is recorded
    in the markers' options (``stage_version``), so the items of an older version are redone, except those
    for which ``unchanged_since(layout, item, older_version)`` (cheap: no decoding) says that this version
    writes what that one wrote; their markers are brought up to date instead.
    """

    name: str
    list_items: Callable[[DataLayout, dict], tuple[list[WorkItem], list[LayoutProblem]]]
    process: Callable[[DataLayout, WorkItem, Any, dict], list[Path]]
    make_state: Callable[[dict, int], Any] | None = None
    option_names: tuple[str, ...] = ()
    added_options: dict[str, Any] = field(default_factory=dict)
    flat_dirs: Callable[[DataLayout], list[Path]] | None = None
    always_run: bool = False
    prefetch: Callable[[DataLayout, WorkItem, Any, dict], None] | None = None
    inputs: Callable[[DataLayout, WorkItem, dict], list[Path]] | None = None
    item_outputs: Callable[[DataLayout, WorkItem], list[Path]] | None = None
    output_dirs: Callable[[DataLayout], list[Path]] | None = None
    version: int = 1
    unchanged_since: Callable[[DataLayout, WorkItem, int], bool] | None = None


@dataclass
class StageSummary:
    stage: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    videos_done: int = 0
    elapsed_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item, error)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (item, warning) of items done
    log_path: Path | None = None
    log_problem: str | None = None  # why log_path could not be written (a full disk), None when it could

    @property
    def videos_per_s(self) -> float:
        return self.videos_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        n_warnings = len(self.warnings)
        warnings = f", {n_warnings} warning{'s' if n_warnings != 1 else ''}" if n_warnings else ""
        text = (f"{self.stage}: done {self.done}, skipped {self.skipped} (already complete), "
                f"failed {self.failed}{warnings} in {self.elapsed_s:.1f} s ({self.videos_per_s:.2f} videos/s)")
        if self.log_problem is not None:
            text += f"; {self.log_problem}: the messages above are the only record of them"
        elif (self.failed or n_warnings) and self.log_path is not None:
            text += f"; {'failures' if self.failed else 'warnings'} are listed in {self.log_path}"
        return text


# ---- sharding ------------------------------------------------------------------------------------
def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``; None passes through."""
    if text is None:
        return None
    try:
        k_text, n_text = str(text).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N with integers, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: need 0 <= K < N, e.g. 0/4 ... 3/4")
    return k, n


def shard_of(key: str, n_shards: int) -> int:
    """A stable shard number for an item id (the same on every machine and Python version)."""
    return stable_id_hash(key) % n_shards


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(key, shard[1]) == shard[0]


# ---- markers ---------------------------------------------------------------------------------------
# Markers without this format number (written before markers recorded their inputs) are incomplete.
MARKER_FORMAT = 2
# Files up to this size (boxes JSON, small videos) are fingerprinted by their bytes, so that a rerun
# which writes the same bytes again redoes nothing downstream; larger ones (videos) by size and mtime.
CONTENT_HASH_MAX_BYTES = 1 << 20


def fingerprint(path: Path) -> str | None:
    """What an input is now, cheaply: a file up to CONTENT_HASH_MAX_BYTES by the SHA-256 of its bytes,
    a larger file by size and mtime_ns, a folder by one SHA-1 over the sorted (name, size, mtime_ns)
    of its files (temp files left out), so a marker holds one entry per folder however many crops
    it has. None when the path does not exist; ``unreadable:<errno>`` when it cannot be read (the
    item then fails on it with its own message, not the whole stage here)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            with os.scandir(path) as entries:
                files = sorted((entry.name, entry.stat()) for entry in entries
                               if entry.is_file() and not entry.name.startswith(TEMP_PREFIX))
            digest = hashlib.sha1()
            for name, file_info in files:
                digest.update(f"{name}\0{file_info.st_size}\0{file_info.st_mtime_ns}\n".encode())
            return f"folder:{len(files)}:{digest.hexdigest()}"
        if info.st_size <= CONTENT_HASH_MAX_BYTES:
            return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        return f"file:{info.st_size}:{info.st_mtime_ns}"
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def _relative(layout: DataLayout, path: Path) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(layout.root))
    except ValueError:  # an input outside DATA_ROOT (a symlinked part, say): keyed by its full path
        return str(path.resolve())


def input_fingerprints(layout: DataLayout, stage: Stage, item: WorkItem, options: dict) -> dict[str, str | None]:
    """``{input path relative to DATA_ROOT: fingerprint}`` of everything ``item`` reads in ``stage``."""
    inputs = stage.inputs(layout, item, options) if stage.inputs else [v.path for v in item.videos]
    return {_relative(layout, path): fingerprint(Path(path)) for path in inputs}


# the options key of a stage's version in its markers (absent: version 1, as before versions were recorded)
VERSION_KEY = "stage_version"


def _marker_options(stage: Stage, options: dict) -> dict:
    recorded = {name: options.get(name) for name in stage.option_names}
    recorded.update({name: options[name] for name, default in stage.added_options.items()
                     if options.get(name, default) != default})
    if stage.version != 1:
        recorded[VERSION_KEY] = stage.version
    return recorded


def is_complete(layout: DataLayout, stage: Stage, item: WorkItem, options: dict,
                inputs: dict[str, str | None] | None = None) -> bool:
    """The item's marker has this format, the same options, the same input fingerprints (``inputs``:
    already computed, else computed here) and every output it lists is on disk. A marker of an older
    ``stage.version`` counts when ``stage.unchanged_since`` says so for this item; it is then rewritten
    with this version, so that the question is asked once."""
    marker = layout.progress_path(stage.name, item.key)
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("format") != MARKER_FORMAT:
        return False
    options_now = _marker_options(stage, options)
    older_version = _older_version(stage, record.get("options"), options_now)
    if record.get("options") != options_now and older_version is None:
        return False
    inputs = inputs if inputs is not None else input_fingerprints(layout, stage, item, options)
    if record.get("inputs") != inputs or not outputs_present(layout.root, record.get("outputs", [])):
        return False
    if older_version is not None:
        if not stage.unchanged_since(layout, item, older_version):
            return False
        _write_record(layout, stage, item, options_now, record["outputs"], inputs)
    return True


def _older_version(stage: Stage, recorded: Any, options_now: dict) -> int | None:
    """The older version of the stage a marker's options were recorded by, when they differ from
    ``options_now`` in that alone and the stage can tell which items that version left unchanged."""
    if stage.unchanged_since is None or not isinstance(recorded, dict):
        return None
    version = recorded.get(VERSION_KEY, 1)
    others = {name: value for name, value in recorded.items() if name != VERSION_KEY}
    if not isinstance(version, int) or version >= stage.version or others != {
            name: value for name, value in options_now.items() if name != VERSION_KEY}:
        return None
    return version


def outputs_present(root: Path, relative_paths: Sequence[str]) -> bool:
    """Every listed file exists. A folder holding several of them is listed once (names, no stat per
    file: most of the cost of checking a large DATA_ROOT otherwise); a lone file gets one stat, so a
    shared folder of one file per item (boxes/) is never listed once per item."""
    names_in: dict[str, list[str]] = {}
    for relative in relative_paths:
        folder, _, name = relative.rpartition(os.sep)
        names_in.setdefault(folder, []).append(name)
    for folder, names in names_in.items():
        folder_path = os.path.join(root, folder)
        if len(names) == 1:
            if not os.path.isfile(os.path.join(folder_path, names[0])):
                return False
            continue
        try:
            with os.scandir(folder_path) as entries:
                present = {entry.name for entry in entries if entry.is_file()}
        except OSError:
            return False
        if not present.issuperset(names):
            return False
    return True


def _output_below_root(layout: DataLayout, path: Path) -> str:
    """An output's path below DATA_ROOT as it is named there: an output folder may be a symlink to
    another disk (``crops/``), which resolving would take outside DATA_ROOT."""
    try:
        return str(path.absolute().relative_to(layout.root.absolute()))
    except ValueError:  # named through another path to DATA_ROOT
        return str(path.resolve().relative_to(layout.root.resolve()))


def _write_marker(layout: DataLayout, stage: Stage, item: WorkItem, options: dict, outputs: list[Path],
                  inputs: dict[str, str | None]) -> None:
    relative = sorted(_output_below_root(layout, Path(p)) for p in outputs)
    _write_record(layout, stage, item, _marker_options(stage, options), relative, inputs)


def _write_record(layout: DataLayout, stage: Stage, item: WorkItem, marker_options: dict, outputs: list[str],
                  inputs: dict[str, str | None]) -> None:
    write_json_atomic(layout.progress_path(stage.name, item.key),
                      {"format": MARKER_FORMAT, "item": item.key, "options": marker_options,
                       "inputs": inputs, "outputs": outputs}, root=layout.progress_dir(stage.name))


def _clear_item(layout: DataLayout, stage: Stage, item: WorkItem) -> None:
    """Remove the marker, then the outputs of an item about to be (re)done: what its new run writes
    is then all there is (no crop of older boxes next to the new ones). Each removal is checked to stay
    inside the output folder it belongs to (``remove_inside``)."""
    remove_inside(layout.progress_dir(stage.name), layout.progress_path(stage.name, item.key))
    roots = [Path(root) for root in (stage.output_dirs(layout) if stage.output_dirs else [])]
    for path in (stage.item_outputs(layout, item) if stage.item_outputs else []):
        remove_inside(_output_root_of(Path(path), roots, stage.name), path)


def _output_root_of(path: Path, roots: list[Path], stage: str) -> Path:
    """The output folder ``path`` is named under (by its name only: ``remove_inside`` then checks where it
    really is, so ``crops/..`` is found here and refused there)."""
    named = [root for root in roots if path.is_relative_to(root)]
    if not named:
        raise OutsideRootError(f"{stage} names {path} as an output of an item, but it is in none of the stage's "
                               f"output folders ({', '.join(map(str, roots))}); this is a bug, please report it")
    return max(named, key=lambda root: len(root.parts))


def _append_log(layout: DataLayout, stage: str, item: str, message: str, kind: str = "error") -> str | None:
    """Append one line to the stage's log; returns why it could not be written (a full disk, say), else
    None: the item's message is in the summary anyway, so losing the log must not end the run."""
    # appended, never truncated: shards on several machines may share one log file
    path = layout.log_path(stage)
    line = json.dumps({"item": item, "stage": stage, "kind": kind, kind: message,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        return f"cannot write {path} ({exc.strerror or exc})"
    return None


# ---- writable outputs ----------------------------------------------------------------------------
def folders_written(layout: DataLayout, stage: Stage) -> list[Path]:
    """Every folder a stage writes into: its outputs, its markers, the logs."""
    folders = [layout.logs_dir] + (stage.output_dirs(layout) if stage.output_dirs else [])
    if not stage.always_run:
        folders.append(layout.progress_path(stage.name, "x").parent)
    return list(dict.fromkeys(folders))


def check_writable(layout: DataLayout, stages: Sequence[Stage]) -> None:
    """Raise LayoutError unless every folder the stages write into can be made and written to: one
    temp file created and removed in each, before any work (else the first write fails hours in)."""
    for stage in stages:
        for folder in folders_written(layout, stage):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=folder, prefix=f"{TEMP_PREFIX}write-check."):
                    pass
            except OSError as exc:
                raise LayoutError(
                    f"cannot write to {folder} ({exc.strerror or exc}); {stage.name} writes its outputs inside "
                    f"DATA_ROOT {layout.root}: make it writable (on a read-only dataset copy or mount, link "
                    f"its dataset folders, e.g. dfdc_train_part_*, into a writable folder and pass that one)") from None


# ---- workers -------------------------------------------------------------------------------------
def default_workers() -> int:
    return os.cpu_count() or 1


# One math-library thread per worker, whatever the number of workers: reductions split over a different
# number of threads round differently, and outputs must be byte-identical however a run was split up.
# Parallelism comes from the worker processes (default: one per core).
THREADS_PER_WORKER = 1


def configure_threads(threads: int) -> tuple[int, int | None]:
    """Set the cv2 and (if loaded) torch thread counts of this process; returns the previous ones."""
    import cv2

    previous = (cv2.getNumThreads(), None)
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:  # stages without a model never pay for importing torch
        torch = sys.modules["torch"]
        previous = (previous[0], torch.get_num_threads())
        torch.set_num_threads(threads)
    return previous


def _restore_threads(previous: tuple[int, int | None]) -> None:
    import cv2

    cv2.setNumThreads(previous[0])
    if previous[1] is not None:
        sys.modules["torch"].set_num_threads(previous[1])


_WORKER: dict[str, Any] = {}


def worker_index() -> int:
    """This worker process's number, 0 ... workers-1, in the order they started (0 in-process)."""
    return _WORKER.get("index", 0)


def _use_gpu_of_worker(options: dict, index: int) -> None:
    """Spread the workers of a ``--device cuda`` (or ``auto``) run over all visible GPUs: worker i makes
    GPU i mod count its current device, so "cuda" means that GPU in this process. An explicit
    ``cuda:N`` and CPU runs are left alone; stages without a device option never import torch here."""
    if str(options.get("device", "cpu")) not in ("cuda", "auto"):
        return
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())


def _init_worker(stage: Stage, options: dict, root: str, threads: int, counter, parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # a killed run leaves no worker behind that goes on writing
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    with counter.get_lock():
        _WORKER["index"] = counter.value
        counter.value += 1
    configure_threads(threads)
    _use_gpu_of_worker(options, _WORKER["index"])
    _WORKER["stage"] = stage
    _WORKER["options"] = options
    _WORKER["layout"] = DataLayout(root)
    _WORKER["state"] = stage.make_state(options, threads) if stage.make_state else None


def _run_item(stage: Stage, layout: DataLayout, item: WorkItem, state: Any, options: dict):
    try:
        if not stage.always_run:
            _clear_item(layout, stage, item)
        result = stage.process(layout, item, state, options)
        result = result if isinstance(result, ItemResult) else ItemResult(list(result))
        if not result.outputs and not stage.always_run:
            raise ItemError(f"{stage.name} wrote no output for {item.key} and named no reason; it stays "
                            f"to do (a bug in the stage: please report it)")
        return item, [str(p) for p in result.outputs], None, list(result.warnings)
    except Exception as exc:  # any bad input: logged, the run goes on
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, (ItemError, OSError, ValueError)):
            message = f"{type(exc).__name__}: {message}"
        return item, None, message, []


def _run_items(stage: Stage, layout: DataLayout, items: Sequence[WorkItem], state: Any, options: dict):
    """``_run_item`` over ``items`` in order, telling a prefetching stage the next item first."""
    for position, item in enumerate(items):
        if stage.prefetch is not None and position + 1 < len(items):
            try:
                stage.prefetch(layout, items[position + 1], state, options)
            except Exception:  # that item reports its own problem when it is processed
                pass
        yield _run_item(stage, layout, item, state, options)


def _worker_run(items: list[WorkItem]):
    return list(_run_items(_WORKER["stage"], _WORKER["layout"], items, _WORKER["state"], _WORKER["options"]))


# A prefetching stage sends a worker process several items per task (the next one is prefetched
# within a task): at most MAX_ITEMS_PER_TASK, so that a killed run redoes at most that many items per
# worker, and small enough that every worker gets MIN_TASKS_PER_WORKER tasks (load balance).
MAX_ITEMS_PER_TASK = 8
MIN_TASKS_PER_WORKER = 4


def _task_size(stage: Stage, n_items: int, n_workers: int) -> int:
    if stage.prefetch is None:
        return 1
    return max(1, min(MAX_ITEMS_PER_TASK, n_items // (MIN_TASKS_PER_WORKER * n_workers)))


# ---- the runner ----------------------------------------------------------------------------------
def run_stage(stage: Stage, data_root: str | os.PathLike | DataLayout, options: dict | None = None,
              workers: int | None = None, shard: tuple[int, int] | str | None = None,
              progress: bool = True) -> StageSummary:
    """Run ``stage`` over DATA_ROOT (a folder, or a DataLayout naming its datasets). Raises LayoutError only
    when DATA_ROOT is unusable, LockError when a conflicting run holds DATA_ROOT (see ``core.run_control``)."""
    options = dict(options or {})
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    workers = default_workers() if workers is None else check_workers(workers)
    layout = data_root if isinstance(data_root, DataLayout) else DataLayout(data_root)
    layout.check()
    check_writable(layout, [stage])
    with preprocessing_lock(layout.root, shard):
        return _run_stage_locked(stage, layout, options, workers, shard, progress)


def _run_stage_locked(stage: Stage, layout: DataLayout, options: dict, workers: int,
                      shard: tuple[int, int] | None, progress: bool) -> StageSummary:
    started = time.perf_counter()
    summary = StageSummary(stage.name, log_path=layout.log_path(stage.name))

    items, problems = stage.list_items(layout, options)
    items = [item for item in items if in_shard(item.key, shard)]
    def fail(item_key: str, error: str) -> None:
        # logged at once, so that a run killed later still leaves the failures seen so far
        summary.failures.append((item_key, error))
        summary.log_problem = _append_log(layout, stage.name, item_key, error) or summary.log_problem

    for problem in problems:
        if in_shard(problem.item, shard):
            fail(problem.item, problem.error)

    keys = {item.key for item in items}
    owned = (lambda name: Path(name).stem in keys)  # noqa: E731 - temp names carry "<item>.<ext>"
    for folder in (stage.flat_dirs(layout) if stage.flat_dirs else []):
        remove_stale_temps(folder, owned)
    remove_stale_temps(layout.progress_path(stage.name, "x").parent, owned)

    todo: list[WorkItem] = []
    inputs_of: dict[str, dict[str, str | None]] = {}  # fingerprinted once: checked now, recorded when done
    for item in items:
        if not stage.always_run:
            inputs_of[item.key] = input_fingerprints(layout, stage, item, options)
            if is_complete(layout, stage, item, options, inputs_of[item.key]):
                summary.skipped += 1
                continue
        todo.append(item)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(item.n_videos for item in todo), unit="video", desc=stage.name,
                   dynamic_ncols=True)

    def finish(item: WorkItem, outputs: list[str] | None, error: str | None, warnings: list[str]) -> None:
        if error is None:
            for warning in warnings:
                summary.warnings.append((item.key, warning))
                summary.log_problem = _append_log(layout, stage.name, item.key, warning, "warning") or summary.log_problem
            if not stage.always_run:
                _write_marker(layout, stage, item, options, [Path(p) for p in outputs], inputs_of[item.key])
            summary.done += 1
            summary.videos_done += item.n_videos
        else:
            fail(item.key, error)
        if bar is not None:
            bar.update(item.n_videos)

    try:
        n_workers = min(workers, len(todo))
        if n_workers <= 1 and todo:
            if stage.make_state:
                import torch  # noqa: F401 - loaded first so that its thread count is set and restored

            previous = configure_threads(THREADS_PER_WORKER)
            try:
                state = stage.make_state(options, THREADS_PER_WORKER) if stage.make_state else None
                for result in _run_items(stage, layout, todo, state, options):
                    finish(*result)
            finally:  # in-process runs (tests, notebooks) leave the caller's settings as they were
                _restore_threads(previous)
        elif todo:
            _run_in_pool(stage, layout, todo, options, n_workers, finish)
    finally:
        if bar is not None:
            bar.close()

    summary.failed = len(summary.failures)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _run_in_pool(stage: Stage, layout: DataLayout, todo: list[WorkItem], options: dict, n_workers: int,
                 finish: Callable) -> None:
    """``todo`` in ``n_workers`` worker processes, ``finish`` called with each result in order. Anything
    that ends this early (SIGTERM, Ctrl-C, an error) stops the workers at once: a pool left to itself
    would finish every queued item first."""
    # spawn: torch and OpenMP are not fork-safe once initialised in the parent
    context = multiprocessing.get_context("spawn")
    started_workers = context.Value("i", 0)  # numbers the workers (GPU choice, worker_index())
    pool = ProcessPoolExecutor(n_workers, mp_context=context, initializer=_init_worker,
                               initargs=(stage, options, str(layout.root), THREADS_PER_WORKER, started_workers,
                                         os.getpid()))
    try:
        size = _task_size(stage, len(todo), n_workers)
        tasks = [todo[start:start + size] for start in range(0, len(todo), size)]
        futures = [pool.submit(_worker_run, task) for task in tasks]
        for task, future in zip(tasks, futures):
            try:
                results = future.result()
            except BrokenProcessPool as exc:
                results = [(item, None, f"worker process died ({exc}); rerun the stage to retry this item",
                            []) for item in task]
            for result in results:
                finish(*result)
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now and wait for them to end."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    workers = list((pool._processes or {}).values())  # the only handle on them before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()


# ---- command line --------------------------------------------------------------------------------
def check_workers(workers) -> int:
    """``--workers N`` as an int >= 1 (1: everything in this process, no worker process)."""
    try:
        value = int(workers)
    except (TypeError, ValueError):
        raise ValueError(f"--workers {workers!r}: expected a whole number >= 1") from None
    if value < 1:
        raise ValueError(f"--workers {workers}: must be at least 1 (1 runs every item in this process, N > 1 "
                         f"starts N worker processes; leave it out for one per core)")
    return value


def workers_arg(text: str) -> int:
    try:
        return check_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def stage_parser(description: str, sharded: bool = True) -> argparse.ArgumentParser:
    """The options every stage shares (``sharded=False``: a single-item stage, no --workers/--shard)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data_root", metavar="DATA_ROOT", help="folder holding the dataset as it ships (DFDC's "
                        "dfdc_train_part_* folders, FF++'s original_sequences/ and manipulated_sequences/, "
                        "Celeb-DF's Celeb-real/ ...; docs/datasets.md)")
    parser.add_argument("--dataset", default=None, metavar="NAME[,NAME]",
                        help=f"the datasets to read ({', '.join(READERS.names())}; default: every one found in "
                             f"DATA_ROOT)")
    parser.add_argument("--compression", default=DEFAULT_COMPRESSION, choices=COMPRESSIONS + ("raw",),
                        help=f"FaceForensics++ / DFD: which videos to read (default {DEFAULT_COMPRESSION}; raw is c0)")
    if sharded:
        parser.add_argument("--workers", type=workers_arg, default=None,
                            help="worker processes, at least 1 (default: all cores; 1: no worker process); GPU "
                                 "stages load one model per worker")
        parser.add_argument("--shard", default=None, metavar="K/N",
                            help="process only shard K of N (0-based), e.g. $SLURM_ARRAY_TASK_ID/N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def layout_of(args: argparse.Namespace) -> DataLayout:
    """The DATA_ROOT of a stage's command line, with its --dataset and --compression."""
    return DataLayout(args.data_root, args.dataset, ReaderOptions(args.compression))


def scale_arg(text: str) -> str | float:
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale {text!r}: expected 'auto' or a number such as 0.5") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--scale {text!r}: must be > 0")
    return value


def print_summaries(summaries: Sequence[StageSummary], max_warnings: int = 50) -> None:
    for summary in summaries:
        # failures (the item is not done) and warnings (it is) both say the file and what to do
        messages = summary.failures + summary.warnings
        for shown, (item, message) in enumerate(messages):
            if shown == max_warnings and summary.log_problem is None:  # else this output is their only record
                print(f"warning: {summary.stage}: ... {len(messages) - shown} more in {summary.log_path}",
                      file=sys.stderr)
                break
            print(f"warning: {summary.stage}: {item}: {message}", file=sys.stderr)
        print(summary.line())


def run_cli(run: Callable[[], StageSummary | Sequence[StageSummary]]) -> int:
    """Call ``run``, print the summary; exit code 2 when DATA_ROOT is unusable, an option is bad or
    another run holds DATA_ROOT; 143 (130) when SIGTERM (Ctrl-C) stopped the run."""
    try:
        with stop_on_sigterm():
            result = run()
    except (LayoutError, LockError, ValueError) as exc:  # nothing could run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Stopped, KeyboardInterrupt) as exc:
        print(f"\n{str(exc) or 'stopped by SIGINT'}: the items in flight were dropped, every finished item is kept; "
              f"run the same command again to finish", file=sys.stderr)
        return stop_exit_code(exc)
    print_summaries([result] if isinstance(result, StageSummary) else list(result))
    return 0
