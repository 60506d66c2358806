"""One preprocessing run per DATA_ROOT at a time (the shards of one split together), with real
processes: a second run is refused naming the first, the lock of a killed run is taken over, SIGTERM or
Ctrl-C stops the worker processes too, a worker whose parent is killed exits, and a rerun finishes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core import run_control
from core.run_control import LockError, preprocessing_lock
from preprocessing.detect_original_faces import detect_original_faces
from preprocessing.pipeline import preprocess
from tests.conftest import REPO_ROOT, child_pids, command_line, copy_tree, is_alive, wait_for
from tests.preprocessing.test_preprocessing_runner import snapshot, temp_files

# holds the lock of a preprocessing run (shard "K/N" or "none") until it is killed
HOLD_LOCK = ("import sys, time\nfrom core.run_control import preprocessing_lock\n"
             "shard = None if sys.argv[2] == 'none' else tuple(int(x) for x in sys.argv[2].split('/'))\n"
             "with preprocessing_lock(sys.argv[1], shard):\n    print('held', flush=True)\n    time.sleep(600)\n")


def _env() -> dict:
    # preprocess_data.sh runs python3 from PATH when the repository has no .venv: this interpreter's
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def _hold_lock(root: Path, shard: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root), shard], cwd=REPO_ROOT, env=_env(),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _workers(pid: int) -> list[int]:
    """The process pool's worker processes of ``pid`` (not its multiprocessing resource tracker)."""
    return [child for child in child_pids(pid) if "spawn_main" in command_line(child)]


def test_shards_of_one_split_run_together_and_overlapping_runs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(run_control, "LOCK_WAIT_S", 0.5)
    root = tmp_path / "data"
    root.mkdir()
    holder = _hold_lock(root, "0/2")
    try:
        with preprocessing_lock(root, (1, 2)):  # the other shard of the same split
            pass
        # the unsharded run, the same shard again, a shard of another split (its items overlap)
        for shard in (None, (0, 2), (0, 3)):
            with pytest.raises(LockError) as refused:
                with preprocessing_lock(root, shard):
                    pass
            message = str(refused.value)
            assert str(root / ".locks" / "preprocess.shard-0-of-2.lock") in message, message
            assert f"pid {holder.pid} on {socket.gethostname()}" in message and "time.sleep" in message
    finally:
        holder.kill()
        holder.wait()
    with preprocessing_lock(root, None):  # kill -9 left its lock file behind: taken over all the same
        assert f'"pid": {os.getpid()}' in (root / ".locks" / "preprocess.lock.owner.json").read_text()
    assert not (root / ".locks" / "preprocess.lock.owner.json").exists()


@pytest.mark.slow
def test_a_second_run_is_refused_and_a_killed_runs_workers_exit_and_its_lock_is_taken_over(
        sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    first = subprocess.Popen([sys.executable, "-m", "preprocessing.pipeline", str(root), "--workers", "2",
                              "--no-progress"], cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    lock = root / ".locks" / "preprocess.lock"
    try:
        workers = wait_for(lambda: (Path(f"{lock}.owner.json").is_file() and len(_workers(first.pid)) == 2
                                    and _workers(first.pid)), 300, "the first run and its two workers", first)
        os.kill(first.pid, signal.SIGSTOP)  # it keeps the lock however slow this machine is
        # the whole pipeline, and one stage of one shard: both overlap the running run
        for command in (["preprocessing.pipeline", str(root)],
                        ["preprocessing.extract_crops", str(root), "--shard", "0/2"]):
            second = subprocess.run([sys.executable, "-m", *command, "--no-progress"], cwd=REPO_ROOT, env=_env(),
                                    capture_output=True, text=True, timeout=300)
            assert second.returncode == 2, second.stderr[-3000:]
            assert f"{lock} is held by pid {first.pid} on {socket.gethostname()}" in second.stderr, second.stderr
            assert "preprocessing.pipeline" in second.stderr and "--shard" in second.stderr
        os.kill(first.pid, signal.SIGKILL)  # no cleanup at all
        first.wait(timeout=60)
        wait_for(lambda: not any(is_alive(pid) for pid in workers), 10, "the workers of the killed run to exit")
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    summaries = preprocess(root, workers=1, progress=False)  # takes the lock over and finishes the work
    assert [s.failed for s in summaries] == [0] * 5
    assert not temp_files(root)
    assert snapshot(root) == snapshot(preprocessed_root)


def _stop_midway(command: list[str], root: Path, signum: int) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Start ``command``, send ``signum`` once its two workers run and the first box is written; returns
    how it ended and the child processes it had at that moment."""
    run = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        wait_for(lambda: len(_workers(run.pid)) == 2 and any((root / "boxes").glob("*.json")), 300,
                 "two workers and the first box", run)
        children = child_pids(run.pid)
        os.kill(run.pid, signum)
        stdout, stderr = run.communicate(timeout=30)
        wait_for(lambda: not any(is_alive(pid) for pid in children), 10, "every child process to exit")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    return subprocess.CompletedProcess(command, run.returncode, stdout, stderr), children


@pytest.mark.slow
def test_sigterm_to_preprocess_data_sh_stops_its_workers_and_a_rerun_finishes(sample_root, preprocessed_root,
                                                                              tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    stopped, children = _stop_midway([str(REPO_ROOT / "preprocess_data.sh"), str(root), "--workers", "2",
                                      "--no-progress"], root, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert "stopped by SIGTERM" in stopped.stderr and "run the same command again" in stopped.stderr
    assert len(children) >= 2
    assert not (root / "folds.csv").exists()
    summaries = preprocess(root, workers=1, progress=False)
    assert [s.failed for s in summaries] == [0] * 5
    assert not temp_files(root)
    assert snapshot(root) == snapshot(preprocessed_root)


@pytest.mark.slow
def test_ctrl_c_to_a_stage_stops_its_workers_at_once(sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    stopped, _ = _stop_midway([sys.executable, "-m", "preprocessing.detect_original_faces", str(root), "--workers",
                               "2", "--no-progress"], root, signal.SIGINT)
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-3000:]
    assert "stopped by SIGINT" in stopped.stderr and "Traceback" not in stopped.stderr
    summary = detect_original_faces(root, workers=1, progress=False)
    assert summary.failed == 0 and summary.done + summary.skipped == 4
    boxes = {p.name: p.read_bytes() for p in (root / "boxes").iterdir()}
    assert boxes == {p.name: p.read_bytes() for p in (preprocessed_root / "boxes").iterdir()}


def test_a_stop_inside_a_deferred_block_takes_effect_when_the_block_ends():
    import time

    from core.run_control import Stopped, stop_deferred, stop_on_sigterm

    done = []
    with stop_on_sigterm():
        with pytest.raises(Stopped, match="SIGTERM"):
            with stop_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # time for the handler to run, were it not held back
                done.append("the block's last write")
        assert done == ["the block's last write"]
        with pytest.raises(KeyboardInterrupt):
            with stop_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
                done.append("after Ctrl-C")
    assert done[-1] == "after Ctrl-C"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are back
