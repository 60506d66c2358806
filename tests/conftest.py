"""Shared fixtures: a tiny generated DFDC-style dataset, and the same data run through preprocessing.

Both are built once per test session (they are the slow part) and must be treated as read-only;
tests that change files copy them first (``copy_tree``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_SMALL = REPO_ROOT.parent / "shared" / "data" / "real_small"
FFPP_TRAIN = REPO_ROOT.parent / "shared" / "data" / "ffpp_train"

# The tiny set every test shares: 2 parts x 2 reals x 2 fakes, 2 s at 10 fps (frames 0 and 10 are cropped).
TINY_SET = dict(parts=2, reals_per_part=2, seconds=2.0, fps=10, size=(320, 240), seed=0, test_videos=4)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@contextmanager
def registered(registry, name: str, entry):
    """``entry`` in ``registry`` under ``name`` for the ``with`` block, removed again after (toy entries)."""
    registry.register(name, entry)
    try:
        yield name
    finally:
        registry.unregister(name)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A generated DATA_ROOT (dfdc_train_part_*/ + test_videos/). Read-only."""
    from sample_data.make_sample_dataset import generate_sample_dataset

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
def four_fold_root(preprocessed_root, tmp_path_factory) -> Path:
    """``preprocessed_root`` (4 identity groups of 3 videos, 2 per data part) with each group in a fold of
    its own: folds 0 and 2 hold part 0's groups, 1 and 3 part 1's, so that a test fold (0), a validation
    fold (1) and two training folds exist. Read-only."""
    from datasets.layout import DataLayout
    from training.datasets.classifier_dataset import identity_groups_of, read_folds

    root = copy_tree(preprocessed_root, tmp_path_factory.mktemp("four_folds") / "data")
    folds = read_folds(root)
    group_of = identity_groups_of(root, folds)
    part_of = {e.identity_group: e.part for e in DataLayout(root).scan()[0] if e.identity_group}
    by_part = sorted(sorted(set(group_of.values())), key=lambda g: part_of[g])
    assert len(by_part) == 4 and part_of[by_part[0]] == part_of[by_part[1]] != part_of[by_part[2]]
    fold_of = dict(zip(by_part, (0, 2, 1, 3)))
    folds["fold"] = [fold_of[group_of[v]] for v in folds["video"]]
    folds.to_csv(DataLayout(root).folds_csv, index=False)
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


@pytest.fixture(scope="session")
def ffpp_train() -> Path:
    """The 104 real FF++ videos in ../shared/data/ffpp_train (one part); skips when absent."""
    if not (FFPP_TRAIN / "dfdc_train_part_0" / "metadata.json").is_file():
        pytest.skip(f"FF++ training videos not present at {FFPP_TRAIN}")
    return FFPP_TRAIN


# ---- damaged and read-only inputs, made for real ---------------------------------------------------

def ffpp_subset_part(ffpp_train: Path, root: Path, names: list[str], place=None) -> Path:
    """``root/dfdc_train_part_0`` holding the ``ffpp_train`` videos ``names`` (linked, or written by
    ``place(source, target)``) and their metadata entries; returns the part folder."""
    import json

    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True)
    source = ffpp_train / "dfdc_train_part_0"
    metadata = json.loads((source / "metadata.json").read_text())
    for name in names:
        if place is None:
            (part / f"{name}.mp4").symlink_to(source / f"{name}.mp4")
        else:
            place(source / f"{name}.mp4", part / f"{name}.mp4")
    (part / "metadata.json").write_text(json.dumps({f"{n}.mp4": metadata[f"{n}.mp4"] for n in names}))
    return part

def save_inflated_clip_checkpoint(path: Path, config: dict, **extra) -> Path:
    """An I3D network inflated from the offline Lite0 ImageNet weights (seeded), its random head scaled so that
    clips get different logits, saved at ``path`` by the project's checkpoint writer (``extra``: e.g. a
    calibration)."""
    import torch

    from models.checkpoints import save_checkpoint
    from models.registry import create_model, get_family

    torch.manual_seed(0)
    model = create_model(config)
    get_family(config).init_weights(model, config)
    with torch.no_grad():  # a random head gives every clip about the same logit: spread it
        model.fc.weight.mul_(20.0)
    save_checkpoint(path, model.eval(), config, **extra)
    return path


def same_detections(detector, reference, frames, scales=(0.5, "auto")) -> int:
    """Asserts that two face detectors give equal boxes and landmarks (dtype and every bit) on ``frames`` at
    each detector scale; returns how many faces were compared (so a caller can insist that some were)."""
    import numpy as np

    compared = 0
    for scale in scales:
        got = detector.detect(frames, scale=scale, landmarks=True)
        expected = reference.detect(frames, scale=scale, landmarks=True)
        for kind_got, kind_expected in zip(got, expected):
            for a, b in zip(kind_got, kind_expected):
                assert (a is None) == (b is None)
                if a is not None:
                    assert a.dtype == b.dtype and np.array_equal(a, b)
                    compared += len(a)
    return compared


def write_truncated_video(frames, path: Path, keep_frames: int, fps: int = 10) -> Path:
    """An H.264 MP4 of ``frames`` cut right after the data of the first ``keep_frames`` of them.

    The index (moov) is written before the frame data (``movflags=faststart``), so the cut file still
    lists every frame in its header while only the first ``keep_frames`` decode: a download cut short.
    No B-frames, so the first frames in the file are the first frames of the video.
    """
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"x264-params": "bframes=0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(path)) as container:
        ends = [packet.pos + packet.size for packet in container.demux(video=0) if packet.size]
    assert len(ends) == len(frames) and 0 < keep_frames < len(frames)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index comes first and survives the cut
    path.write_bytes(data[:ends[keep_frames - 1]])
    return path


@contextmanager
def read_only_folder(folder: Path):
    """``folder`` made read-only for this process, root included (root ignores permission bits, so it
    gets the immutable attribute); skips the test when neither works on this file system."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    else:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"running as root and `chattr +i` fails here ({made.stderr.decode().strip()})")
        undo = ["chattr", "-i", str(folder)]
    try:
        try:
            (folder / "write-probe").touch()
        except OSError:
            pass
        else:
            (folder / "write-probe").unlink()
            pytest.skip(f"{folder} stays writable for this process")
        yield folder
    finally:
        subprocess.run(undo, check=True)


# ---- real processes: their children, their end ---------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process from /proc; None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2:].split()[:2]  # the name in (...) may hold spaces
    return None if state in ("Z", "X") else (state, int(ppid))


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                children.append(int(entry.name))
    return sorted(children)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    return _proc_stat(pid) is not None


def wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen | None = None,
             interval_s: float = 0.05):
    """Poll ``condition()`` until it returns a true value (returned); fail the test naming ``what`` after
    ``timeout_s``, or as soon as ``process`` (the one expected to bring it about) has ended."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"{process.args} ended (exit code {process.returncode}) before {what}")
        time.sleep(interval_s)
    pytest.fail(f"gave up after {timeout_s:.0f} s waiting for {what}")
