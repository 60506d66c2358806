"""The stage runner: resume after SIGKILL, --shard, bad input that never stops a run, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pytest

from core.files import TEMP_PREFIX
from datasets.layout import DataLayout
from preprocessing import pipeline, runner
from preprocessing.detect_original_faces import STAGE, detect_original_faces
from preprocessing.extract_crops import extract_crops
from preprocessing.generate_diffs import generate_diffs
from preprocessing.generate_folds import generate_folds
from preprocessing.generate_landmarks import generate_landmarks
from preprocessing.pipeline import preprocess
from preprocessing.runner import parse_shard, shard_of
from tests.conftest import REPO_ROOT, copy_tree, read_only_folder, write_truncated_video

OUTPUT_DIRS = ("boxes", "crops", "landmarks", "landmarks68", "diffs", "progress")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every output file (relative path -> bytes), temp files included. Markers count without the
    fingerprints of their inputs (those hold file times, which differ between two runs)."""
    files = {}
    for name in OUTPUT_DIRS:
        for path in (root / name).rglob("*"):
            if path.is_file():
                files[str(path.relative_to(root))] = path.read_bytes()
                if name == "progress" and not path.name.startswith(TEMP_PREFIX):
                    record = json.loads(path.read_bytes())
                    record["inputs"] = sorted(record.get("inputs", {}))
                    files[str(path.relative_to(root))] = json.dumps(record, sort_keys=True).encode()
    if (root / "folds.csv").exists():
        files["folds.csv"] = (root / "folds.csv").read_bytes()
    return files


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp*")]


def logged_items(root: Path, stage: str) -> set[str]:
    path = DataLayout(root).log_path(stage)
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {line["item"] for line in lines if line["kind"] == "error"}


def logged_warnings(root: Path, stage: str) -> dict[str, str]:
    path = DataLayout(root).log_path(stage)
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {line["item"]: line["warning"] for line in lines if line["kind"] == "warning"}


def test_shard_argument_is_checked():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    counts = [0, 0, 0]
    for i in range(300):
        counts[shard_of(f"video{i}", 3)] += 1
    assert min(counts) > 60  # the hash spreads items over the shards


def test_sigkill_midway_then_rerun_gives_identical_files(sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1")
    process = subprocess.Popen([sys.executable, "-m", "preprocessing.pipeline", str(root), "--workers", "1",
                                "--no-progress"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    crops = root / "crops"
    deadline = time.monotonic() + 600
    try:
        # kill as soon as stage 2 has written its first crop: that item is half done
        while process.poll() is None and time.monotonic() < deadline:
            if crops.is_dir() and any(crops.rglob("*.png")):
                break
            time.sleep(0.002)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (root / "folds.csv").exists()
    assert len(list((root / "progress" / "extract_crops").glob("*.json"))) < 4  # stage 2 was cut short
    # a write cut short by the kill leaves a temp file next to its target; plant some like it
    layout = DataLayout(root)
    original = sorted(p.stem for p in layout.boxes_dir.glob("*.json"))[0]
    for target in (layout.crop_path(original, 10, 0), layout.boxes_path(original),
                   layout.progress_path("extract_crops", original)):
        target.parent.mkdir(parents=True, exist_ok=True)
        # the name atomic_path gives its temp file (".tmp.<target name>.<8 random chars><suffix>")
        handle, _ = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=target.suffix, dir=target.parent)
        os.write(handle, b"half a file")
        os.close(handle)
    assert len(temp_files(root)) >= 3  # more when the kill itself cut a write short

    summaries = preprocess(root, workers=1, progress=False)
    assert summaries[0].skipped == 4 and summaries[0].done == 0  # stage 1 had finished: nothing redone
    assert 1 <= summaries[1].done <= 4 and summaries[1].done + summaries[1].skipped == 4
    assert not temp_files(root)
    assert snapshot(root) == snapshot(preprocessed_root)
    # a second rerun skips everything and changes nothing
    again = preprocess(root, workers=1, progress=False)
    assert [s.done for s in again[:4]] == [0, 0, 0, 0] and [s.skipped for s in again[:4]] == [4, 4, 4, 4]
    assert snapshot(root) == snapshot(preprocessed_root)


def test_union_of_two_shards_equals_the_unsharded_run(sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    first = preprocess(root, workers=1, progress=False, shard="0/2")
    after_first = snapshot(root)
    second = preprocess(root, workers=1, progress=False, shard="1/2")
    assert len(first) == len(second) == 4  # folds.csv is left for one unsharded run
    assert not (root / "folds.csv").exists()
    for one, two in zip(first, second):
        assert one.failed == two.failed == 0 and one.skipped == two.skipped == 0
        assert one.done > 0 and two.done > 0  # both shards had work
    assert first[0].done + second[0].done == 4
    # no conflicting writes: the second shard wrote only files the first did not
    after_second = snapshot(root)
    assert all(after_second[name] == data for name, data in after_first.items())
    generate_folds(root, progress=False)
    assert snapshot(root) == snapshot(preprocessed_root)


def test_worker_processes_write_the_same_files_as_one_process(sample_root, preprocessed_root, tmp_path,
                                                              monkeypatch):
    # two spawned workers; stage 1 hands each two videos per task and decodes the second while it
    # detects the first (a long run's tasks are up to MAX_ITEMS_PER_TASK videos)
    monkeypatch.setattr(runner, "MIN_TASKS_PER_WORKER", 1)
    assert runner._task_size(STAGE, 4, 2) == 2
    root = copy_tree(sample_root, tmp_path / "data")
    summary = detect_original_faces(root, workers=2, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (4, 0, 0)
    stage1 = {name: data for name, data in snapshot(root).items()
              if name.startswith(("boxes", "progress/detect_original_faces"))}
    expected = {name: data for name, data in snapshot(preprocessed_root).items()
                if name.startswith(("boxes", "progress/detect_original_faces"))}
    assert len(expected) == 8 and stage1 == expected


# a stage that records which worker process handled each item (module-level: spawned workers import it)
def _probe_items(layout, options):
    return [runner.WorkItem(f"item{i}") for i in range(8)], []


def _probe_state(options, threads):
    return runner.worker_index()


def _probe_process(layout, item, index, options):
    time.sleep(0.5)  # long enough that the second worker to start still finds items
    target = layout.root / "probe" / f"{item.key}.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_text(f"{index} {os.getpid()}")
    return [target]


PROBE_STAGE = runner.Stage("worker_probe", _probe_items, _probe_process, _probe_state, always_run=True)


def test_worker_processes_are_numbered_from_zero(tmp_path):
    root = tmp_path / "data"
    (root / "dfdc_train_part_0").mkdir(parents=True)
    summary = runner.run_stage(PROBE_STAGE, root, {"device": "cpu"}, workers=2, progress=False)
    assert summary.done == 8 and summary.failed == 0
    seen = {tuple(p.read_text().split()) for p in (root / "probe").glob("*.txt")}
    index_of_pid = {pid: int(index) for index, pid in seen}
    assert len(index_of_pid) == len(seen) == 2  # one number per process
    assert sorted(index_of_pid.values()) == [0, 1] and str(os.getpid()) not in index_of_pid
    assert runner.worker_index() == 0  # in-process runs are worker 0


def _write_noface_video(path: Path, frames: int = 12) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            image = np.full((240, 320, 3), 90, np.uint8)
            image[60:180, 100 + i:220 + i] = (30, 140, 200)  # a moving box, no face
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.slow
def test_bad_inputs_are_logged_and_everything_else_completes(sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    part = root / "dfdc_train_part_0"
    metadata = json.loads((part / "metadata.json").read_text())
    a_real = next(name for name, info in metadata.items() if info["label"] == "REAL")
    a_fake = next(name for name, info in metadata.items() if info["label"] == "FAKE")
    (part / "truncated.mp4").write_bytes((part / a_real).read_bytes()[:1500])
    (part / "corrupt.mp4").write_bytes(os.urandom(20000))
    writer = cv2.VideoWriter(str(part / "zeroframes.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    writer.release()  # a valid header and not a single frame
    _write_noface_video(part / "noface.mp4")
    (part / "notes.txt").write_text("not a video")
    (part / "stray.txt").write_text("not listed in metadata.json: not an input, ignored")
    shutil.copy(part / a_fake, part / "orphan.mp4")
    for name in ("truncated.mp4", "corrupt.mp4", "zeroframes.mp4", "noface.mp4", "notes.txt", "ghost.mp4"):
        metadata[name] = {"label": "REAL", "split": "train"}
    metadata["orphan.mp4"] = {"label": "FAKE", "split": "train", "original": "gone.mp4"}
    (part / "metadata.json").write_text(json.dumps(metadata))
    no_metadata = root / "dfdc_train_part_7"
    no_metadata.mkdir()
    shutil.copy(part / a_real, no_metadata / "lonely.mp4")

    bad_reals = {"truncated", "corrupt", "zeroframes", "noface", "notes"}
    input_problems = {"ghost", "dfdc_train_part_7"}
    run = dict(workers=1, progress=False)
    s1 = detect_original_faces(root, **run)
    s2 = extract_crops(root, **run)
    # a crop that became unreadable after stage 2
    layout = DataLayout(root)
    broken_original = Path(a_real).stem
    broken = layout.crop_path(broken_original, 10, 0)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    s3 = generate_landmarks(root, **run)
    s4 = generate_diffs(root, **run)
    s5 = generate_folds(root, progress=False)

    assert s1.done == 4 and logged_items(root, "detect_original_faces") == bad_reals | input_problems
    assert s2.done == 4 and logged_items(root, "extract_crops") == bad_reals | input_problems | {"orphan"}
    assert s3.done == 3 and logged_items(root, "generate_landmarks") == bad_reals | input_problems | {broken_original}
    assert s4.done == 3 and logged_items(root, "generate_diffs") == input_problems | {"orphan", broken_original}
    assert s5.done == 1 and logged_items(root, "generate_folds") == input_problems | {"orphan"}
    for summary in (s1, s2, s3, s4, s5):
        assert summary.failed == len(summary.failures) > 0
    assert "noface.mp4: no face found" in dict(s1.failures)["noface"]
    assert str(broken) in dict(s3.failures)[broken_original]

    # everything not touched by the bad input is exactly what a clean run writes
    expected = snapshot(preprocessed_root)
    got = snapshot(root)
    fakes_of_broken = [Path(n).stem for n, info in metadata.items() if info.get("original") == a_real]
    affected = {f"crops/{broken_original}/10_0.png", f"landmarks/{broken_original}/10_0.npy",
                f"landmarks68/{broken_original}/10_0.npy", f"progress/generate_landmarks/{broken_original}.json",
                f"progress/generate_diffs/{broken_original}.json"}
    affected |= {f"diffs/{fake}/10_0_diff.png" for fake in fakes_of_broken}
    assert len(fakes_of_broken) == 2 and affected <= set(expected)
    assert got[f"crops/{broken_original}/10_0.png"] != expected[f"crops/{broken_original}/10_0.png"]
    assert not (affected - {f"crops/{broken_original}/10_0.png"}) & set(got)  # not written for the broken crop
    for name, data in expected.items():
        if name not in affected:
            assert got.get(name) == data, name
    assert got["folds.csv"] == expected["folds.csv"]  # the bad items add no rows
    assert not temp_files(root)


def test_unusable_data_root_or_option_exits_with_code_2(sample_root, tmp_path, capsys):
    assert pipeline.main([str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert pipeline.main([str(tmp_path), "--no-progress"]) == 2  # a folder without dfdc_train_part_*
    assert "no dfdc_train_part_*" in capsys.readouterr().err
    assert pipeline.main([str(tmp_path), "--shard", "2/2"]) == 2
    capsys.readouterr()
    # bad options stop the run before any work, also those of later stages
    for bad in (["--n-splits", "0"], ["--every", "0"], ["--shard", "2/2"]):
        assert pipeline.main([str(sample_root), "--no-progress", *bad]) == 2
        assert bad[0] in capsys.readouterr().err
    assert not (sample_root / "boxes").exists()
    script = subprocess.run([str(REPO_ROOT / "preprocess_data.sh"), str(tmp_path / "missing")],
                            capture_output=True, text=True)
    assert script.returncode == 2 and "does not exist" in script.stderr


# ---- markers that record inputs: a changed input redoes the item, transitively -----------------------
RUN = dict(workers=1, progress=False)
STAGES_1_TO_4 = ("detect_original_faces", "extract_crops", "generate_landmarks", "generate_diffs")


def _originals_and_fakes(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    entries, _ = DataLayout(root).scan()
    originals = [e.video_id for e in entries if not e.is_fake]
    return originals, {o: [e.video_id for e in entries if e.original_id == o] for o in originals}


def test_new_boxes_redo_the_crops_landmarks_and_diffs_made_from_them(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    layout = DataLayout(root)
    before = snapshot(root)
    originals, fakes = _originals_and_fakes(root)
    s1 = detect_original_faces(root, scale=1.0, **RUN)  # another detector input: other boxes
    assert (s1.done, s1.skipped) == (4, 0)
    changed = [o for o in originals if snapshot(root)[f"boxes/{o}.json"] != before[f"boxes/{o}.json"]]
    assert changed
    later = [extract_crops(root, **RUN), generate_landmarks(root, **RUN), generate_diffs(root, **RUN)]
    for summary in later:
        assert (summary.done, summary.skipped, summary.failed) == (len(changed), 4 - len(changed), 0)
    after = snapshot(root)
    for original in changed:
        boxes = json.loads(layout.boxes_path(original).read_text())
        for video in (original, *fakes[original]):
            for frame, face in layout.crop_files(video):  # cut with the new boxes: box + 1/3 on each side
                x1, y1, x2, y2 = boxes[str(frame)][face][:4]
                height, width = cv2.imread(str(layout.crop_path(video, frame, face))).shape[:2]
                assert abs(width - (x2 - x1) * 5 / 3) <= 3 and abs(height - (y2 - y1) * 5 / 3) <= 3
        for name in (f"landmarks68/{original}/0_0.npy", f"diffs/{fakes[original][0]}/0_0_diff.png"):
            assert after[name] != before[name]  # made again, from the new crops
    # with the new boxes in place, everything is complete again
    again = preprocess(root, scale=1.0, **RUN)
    assert [s.done for s in again[:4]] == [0, 0, 0, 0] and [s.skipped for s in again[:4]] == [4, 4, 4, 4]


@pytest.mark.slow
def test_a_redone_item_keeps_no_file_of_its_old_run(sample_root, preprocessed_root, tmp_path):
    root = copy_tree(sample_root, tmp_path / "data")
    preprocess(root, every=5, **RUN)  # crops, landmarks and diffs of frames 0, 5, 10 and 15
    layout = DataLayout(root)
    originals, fakes = _originals_and_fakes(root)
    assert {frame for frame, _ in layout.crop_files(originals[0])} == {0, 5, 10, 15}
    summaries = preprocess(root, every=10, **RUN)
    assert [s.done for s in summaries] == [4, 4, 4, 4, 1] and not any(s.failed for s in summaries)
    # exactly what a run with --every 10 alone writes: no crop, landmark or diff of frames 5 and 15
    assert snapshot(root) == snapshot(preprocessed_root)


def test_a_changed_input_video_redoes_its_item(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    layout = DataLayout(root)
    originals, fakes = _originals_and_fakes(root)
    original = originals[0]
    fake, other_fake = fakes[original]
    entries = {e.video_id: e for e in layout.scan()[0]}
    # the fake's file is replaced by another fake of the same original (a re-downloaded part, say)
    shutil.copyfile(entries[other_fake].path, entries[fake].path)
    summaries = preprocess(root, **RUN)
    assert [(s.done, s.skipped) for s in summaries[:4]] == [(0, 4), (1, 3), (1, 3), (1, 3)]
    for frame, face in layout.crop_files(other_fake):
        assert (layout.crop_path(fake, frame, face).read_bytes()
                == layout.crop_path(other_fake, frame, face).read_bytes())
    diffs = {fake_id: [p.read_bytes() for p in sorted(layout.diffs_dir(fake_id).glob("*.png"))]
             for fake_id in (fake, other_fake)}
    assert diffs[fake] and diffs[fake] == diffs[other_fake]


def test_markers_written_before_inputs_were_recorded_count_as_incomplete(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    for marker in (root / "progress").rglob("*.json"):  # the format of earlier versions
        record = json.loads(marker.read_text())
        marker.write_text(json.dumps({"item": record["item"], "options": record["options"],
                                      "outputs": record["outputs"]}))
    summaries = preprocess(root, **RUN)
    assert [(s.done, s.skipped) for s in summaries[:4]] == [(4, 0)] * 4
    assert snapshot(root) == snapshot(preprocessed_root)


def test_an_option_added_later_keeps_earlier_markers_valid_at_its_default(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    stage1_options = {json.dumps(json.loads(m.read_text())["options"], sort_keys=True)
                      for m in (root / "progress" / "detect_original_faces").glob("*.json")}
    # at the default detector, the options are recorded as runs did before the detector became an option,
    # so the markers of those runs are complete for a run that names the default detector
    assert stage1_options == {json.dumps({"every": 10, "all_frames": False, "scale": 0.5, "recipe": "original"},
                                         sort_keys=True)}
    summaries = preprocess(root, detector="mtcnn", **RUN)
    assert [(s.done, s.skipped) for s in summaries[:4]] == [(0, 4)] * 4
    assert snapshot(root) == snapshot(preprocessed_root)


# ---- an item with missing inputs fails, it is never done ----------------------------------------------
def test_diffs_of_an_original_without_crops_fail_and_are_made_once_it_is_repaired(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    layout = DataLayout(root)
    originals, fakes = _originals_and_fakes(root)
    original = originals[0]
    for name in ("diffs", "progress/generate_diffs"):  # as if stage 4 had not run yet
        shutil.rmtree(root / name)
    shutil.rmtree(layout.crops_dir(original))  # and the original's crops are missing
    summary = generate_diffs(root, **RUN)
    assert (summary.done, summary.failed) == (3, 1)
    assert str(layout.crops_dir(original)) in dict(summary.failures)[original]
    assert logged_items(root, "generate_diffs") == {original}
    assert not layout.progress_path("generate_diffs", original).exists()
    # a fake's crops missing: that item fails too, naming the fake's folder
    other = originals[1]
    shutil.rmtree(layout.crops_dir(fakes[other][1]))
    summary = generate_diffs(root, **RUN)
    assert (summary.done, summary.skipped, summary.failed) == (0, 2, 2)
    assert str(layout.crops_dir(fakes[other][1])) in dict(summary.failures)[other]
    # repaired (stage 2 redoes the items whose crops are gone): the diffs are made
    assert extract_crops(root, **RUN).done == 2
    summary = generate_diffs(root, **RUN)
    assert (summary.done, summary.skipped, summary.failed) == (2, 2, 0)
    assert snapshot(root) == snapshot(preprocessed_root)


def test_boxes_rewritten_byte_for_byte_redo_nothing_downstream(preprocessed_root, tmp_path):
    root = copy_tree(preprocessed_root, tmp_path / "data")
    shutil.rmtree(root / "progress" / "detect_original_faces")  # forces stage 1 to run again
    summaries = preprocess(root, **RUN)
    assert [(s.done, s.skipped) for s in summaries[:4]] == [(4, 0), (0, 4), (0, 4), (0, 4)]


def test_folds_without_any_crop_fail_and_remove_the_old_csv(preprocessed_root, tmp_path):
    root = tmp_path / "data"
    for part in DataLayout(preprocessed_root).parts():
        shutil.copytree(part, root / part.name)
    shutil.copyfile(preprocessed_root / "folds.csv", root / "folds.csv")  # left from a run whose crops are gone
    summary = generate_folds(root, progress=False)
    assert (summary.done, summary.failed) == (0, 1) and "no crops under" in summary.failures[0][1]
    assert not (root / "folds.csv").exists()


def _nothing_items(layout, options):
    return [runner.WorkItem("empty")], []


def _nothing_process(layout, item, state, options):
    return []


def test_an_item_that_writes_nothing_is_never_done(tmp_path):
    root = tmp_path / "data"
    (root / "dfdc_train_part_0").mkdir(parents=True)
    stage = runner.Stage("writes_nothing", _nothing_items, _nothing_process)
    summary = runner.run_stage(stage, root, {}, workers=1, progress=False)
    assert (summary.done, summary.failed) == (0, 1)
    assert "no output" in summary.failures[0][1]
    assert not DataLayout(root).progress_path("writes_nothing", "empty").exists()


def _two_items(layout, options):
    return [runner.WorkItem("a"), runner.WorkItem("b")], []


def _write_item(layout, item, state, options):
    target = layout.root / "out" / f"{item.key}.txt"
    target.parent.mkdir(exist_ok=True)
    with open(layout.root / "runs.txt", "a") as runs:
        runs.write(item.key)
    target.write_text(item.key)
    return [target]


def _only_b_changed(layout, item, older_version):
    return older_version == 2 and item.key == "a"


def test_a_new_stage_version_redoes_the_items_it_changes(tmp_path):
    root = tmp_path / "data"
    (root / "dfdc_train_part_0").mkdir(parents=True)
    runs = root / "runs.txt"

    def run(**version) -> tuple[int, int]:
        summary = runner.run_stage(runner.Stage("versioned", _two_items, _write_item, **version), root, {},
                                   workers=1, progress=False)
        return summary.done, summary.skipped

    assert run() == (2, 0) and run() == (0, 2)
    marker = DataLayout(root).progress_path("versioned", "a")
    assert json.loads(marker.read_text())["options"] == {}  # version 1 records none: earlier markers hold
    # a version that cannot tell which items it changes redoes every item of an older one
    assert run(version=2) == (2, 0) and json.loads(marker.read_text())["options"] == {runner.VERSION_KEY: 2}
    runs.unlink()
    # one that can redoes only those; the others' markers are brought up to date, and asked once
    assert run(version=3, unchanged_since=_only_b_changed) == (1, 1) and runs.read_text() == "b"
    assert json.loads(marker.read_text())["options"] == {runner.VERSION_KEY: 3}
    assert run(version=3) == (0, 2)
    assert run(version=2) == (2, 0)  # an older version than the markers' redoes everything


# ---- a video that decodes only partly: a warning with the frame counts, the item done ----------------
def test_a_partly_decodable_video_is_a_warning_and_its_item_is_done(sample_root, tmp_path, capsys):
    from core.video import iter_frames
    from preprocessing import detect_original_faces as stage1
    from preprocessing import extract_crops as stage2

    root = copy_tree(sample_root, tmp_path / "data")
    originals, fakes = _originals_and_fakes(root)
    entries = {e.video_id: e for e in DataLayout(root).scan()[0]}
    cut_original, cut_fake = originals[0], fakes[originals[1]][0]
    for video in (cut_original, cut_fake):  # 20 frames in the header, 6 that decode
        frames = [frame for _, frame in iter_frames(entries[video].path)]
        assert len(frames) == 20
        write_truncated_video(frames, entries[video].path, keep_frames=6)

    assert stage1.main([str(root), "--workers", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: detect_original_faces: {cut_original}: {entries[cut_original].path}" in err
    assert "6 of the 20 frames" in logged_warnings(root, "detect_original_faces")[cut_original]
    assert logged_items(root, "detect_original_faces") == set()
    layout = DataLayout(root)
    assert layout.progress_path("detect_original_faces", cut_original).exists()
    assert sorted(json.loads(layout.boxes_path(cut_original).read_text())) == ["0"]  # frame 10 is gone

    assert stage2.main([str(root), "--workers", "1", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "done 4, skipped 0 (already complete), failed 0" in out and "1 warning" in out
    warning = logged_warnings(root, "extract_crops")[originals[1]]
    assert str(entries[cut_fake].path) in warning and "6 of the 20 frames" in warning
    assert f"warning: extract_crops: {originals[1]}: {entries[cut_fake].path}" in err
    assert layout.crop_files(cut_fake) == [(0, 0)] and layout.crop_files(originals[1]) == [(0, 0), (10, 0)]
    assert layout.progress_path("extract_crops", originals[1]).exists()


# ---- an unwritable DATA_ROOT: exit code 2 before any work ----------------------------------------------
def test_a_read_only_data_root_stops_every_stage_before_any_work(sample_root, tmp_path, capsys):
    from preprocessing import extract_crops as stage2
    from preprocessing import generate_folds as stage5

    root = copy_tree(sample_root, tmp_path / "data")
    with read_only_folder(root):
        for main in (pipeline.main, stage2.main, stage5.main):
            assert main([str(root), "--no-progress"]) == 2
            err = capsys.readouterr().err
            assert f"error: cannot write to {root}" in err and "Traceback" not in err
    assert sorted(p.name for p in root.iterdir()) == ["dfdc_train_part_0", "dfdc_train_part_1", "test_videos"]


def test_an_output_folder_that_cannot_be_made_stops_the_pipeline_before_any_work(sample_root, tmp_path, capsys):
    root = copy_tree(sample_root, tmp_path / "data")
    (root / "diffs").write_text("a file where stage 4's folder belongs")
    assert pipeline.main([str(root), "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write to {root / 'diffs'}" in err
    assert not list(root.glob("boxes/*")) and not list(root.glob("logs/*"))  # stage 1 never ran


def test_workers_must_be_at_least_one_and_every_stage_takes_no_progress(tmp_path, capsys):
    from preprocessing import (
        detect_original_faces as stage1,
    )
    from preprocessing import (
        extract_crops as stage2,
    )
    from preprocessing import (
        generate_diffs as stage4,
    )
    from preprocessing import (
        generate_folds as stage5,
    )
    from preprocessing import (
        generate_landmarks as stage3,
    )

    for main in (pipeline.main, stage1.main, stage2.main, stage3.main, stage4.main):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path), "--workers", "0"])
        assert exit_info.value.code == 2
        assert "--workers 0: must be at least 1" in capsys.readouterr().err
    for main in (pipeline.main, stage1.main, stage2.main, stage3.main, stage4.main, stage5.main):
        assert main([str(tmp_path / "missing"), "--no-progress"]) == 2  # parsed; stops at the missing root
        assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--workers 0"):
        runner.run_stage(PROBE_STAGE, tmp_path, {}, workers=0, progress=False)


# ---- input that names paths or ids outside its folder, the same id twice, a full disk ----------------
def _small_root(sample_root: Path, root: Path) -> tuple[str, list[str], str]:
    """A DATA_ROOT of one generated original with its fakes and one more original (ids: original, fakes,
    other), copied from the sample dataset's part 0."""
    source = sample_root / "dfdc_train_part_0"
    metadata = json.loads((source / "metadata.json").read_text())
    real, other = sorted(name for name, info in metadata.items() if info["label"] == "REAL")[:2]
    fakes = sorted(name for name, info in metadata.items() if info.get("original") == real)
    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True)
    for name in (real, other, *fakes):
        shutil.copyfile(source / name, part / name)
    (part / "metadata.json").write_text(json.dumps({name: metadata[name] for name in (real, other, *fakes)}))
    return Path(real).stem, [Path(f).stem for f in fakes], Path(other).stem


def _add_entries(part: Path, video: Path, entries: dict[str, dict | list | str]) -> None:
    """List ``entries`` in the part's metadata.json; each relative name that is not there yet gets a copy
    of ``video`` at the place it names."""
    metadata = json.loads((part / "metadata.json").read_text())
    for name, info in entries.items():
        path = part / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(video, path)
        metadata[name] = info
    (part / "metadata.json").write_text(json.dumps(metadata))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _log_lines(root: Path, stage: str) -> dict[str, str]:
    path = DataLayout(root).log_path(stage)
    return {line["item"]: line["error"] for line in map(json.loads, path.read_text().splitlines())
            if line["kind"] == "error"}


@pytest.mark.slow
def test_names_that_point_outside_delete_and_read_nothing_there_and_are_logged(sample_root, tmp_path):
    root = tmp_path / "data"
    real, fakes, other = _small_root(sample_root, root)
    part = root / "dfdc_train_part_0"
    video = part / f"{real}.mp4"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(video, elsewhere / "x.mp4")  # a video with faces: stage 1 would find boxes in it
    shutil.copyfile(video, elsewhere / "y.mp4")
    (elsewhere / "keep.txt").write_text("not the pipeline's")
    (root / "notes.txt").write_text("the user's file in DATA_ROOT")
    _add_entries(part, video, {
        "...mp4": {"label": "REAL"},  # id "..": crops/.. is DATA_ROOT
        "..mp4": {"label": "REAL"},  # id ".": crops/. is every video's crops
        "../../elsewhere/x.mp4": {"label": "REAL"},
        str(elsewhere / "y.mp4"): {"label": "REAL"},
        "self.mp4": {"label": "FAKE", "original": "self.mp4"},
        "fake_of_fake.mp4": {"label": "FAKE", "original": f"{fakes[0]}.mp4"},
        "typed.mp4": {"label": "FAKE", "original": 123},
        "listed.mp4": ["REAL"],
    })
    # the other original's name again in a second part, for another video: neither may be used
    (root / "dfdc_train_part_1").mkdir()
    (root / "dfdc_train_part_1" / "metadata.json").write_text("{}")
    _add_entries(root / "dfdc_train_part_1", part / f"{fakes[0]}.mp4", {f"{other}.mp4": {"label": "REAL"}})
    inputs_before = {**_files(elsewhere), **{f"data/{k}": v for k, v in _files(root).items()}}

    summaries = preprocess(root, **RUN)

    assert [s.done for s in summaries] == [1, 1, 1, 1, 1]
    inputs_after = {**_files(elsewhere), **{f"data/{k}": v for k, v in _files(root).items()}}
    assert {k: v for k, v in inputs_after.items() if k in inputs_before} == inputs_before  # nothing lost
    assert sorted(os.listdir(root / "boxes")) == [f"{real}.json"]  # x.mp4, y.mp4 and the copies never read
    assert sorted(os.listdir(root / "crops")) == sorted([real, *fakes])
    assert sorted(os.listdir(root / "diffs")) == sorted(fakes)
    refused = {"...mp4": "gives the video id '..'", "..mp4": "gives the video id '.'",
               "x": f"is not inside its part folder {part}", "y": f"is not inside its part folder {part}",
               "typed": '"original" of typed.mp4 is a number (123)', "listed": "the entry of listed.mp4 is a list",
               other: "is listed 2 times"}
    left_out_fakes = {"self": "names itself as its original", "fake_of_fake": "a fake, as its original"}
    for stage in STAGES_1_TO_4 + ("generate_folds",):
        logged = _log_lines(root, stage)
        # stages 1 and 3 read originals only: a fake left out is not their input
        fakes_read = stage not in ("detect_original_faces", "generate_landmarks")
        expected = {**refused, **(left_out_fakes if fakes_read else {})}
        assert set(logged) == set(expected), stage
        for item, message in expected.items():
            assert message in logged[item], (stage, item)
    assert "dfdc_train_part_0" in logged[other] and "dfdc_train_part_1" in logged[other]


@pytest.mark.slow
def test_crops_on_a_symlinked_disk_are_redone_and_nothing_beside_them_is_deleted(sample_root, tmp_path):
    root = tmp_path / "data"
    real, fakes, other = _small_root(sample_root, root)
    disk = tmp_path / "disk"
    (disk / "crops").mkdir(parents=True)
    (disk / "other_project.bin").write_bytes(b"precious")
    (root / "crops").symlink_to(disk / "crops")
    part = root / "dfdc_train_part_0"
    _add_entries(part, part / f"{real}.mp4", {"...mp4": {"label": "REAL"}, "..mp4": {"label": "REAL"}})
    first = preprocess(root, **RUN)
    assert [s.done for s in first] == [2, 2, 2, 1, 1]
    stale = disk / "crops" / real / "999_0.png"
    stale.write_bytes(b"left from an older run")
    redone = extract_crops(root, every=5, **RUN)  # another option: every item is cleared and cut again
    assert (redone.done, redone.skipped) == (2, 0)
    assert not stale.exists() and (disk / "crops" / real / "0_0.png").is_file()
    assert (disk / "other_project.bin").read_bytes() == b"precious" and (root / "crops").is_symlink()
    assert sorted(os.listdir(disk / "crops")) == sorted([real, *fakes, other])


@pytest.mark.slow
def test_a_full_disk_under_the_log_does_not_stop_the_run(sample_root, tmp_path, capsys):
    root = tmp_path / "data"
    real, _, _ = _small_root(sample_root, root)
    part = root / "dfdc_train_part_0"
    _add_entries(part, part / f"{real}.mp4", {"ghost.mp4": {"label": "REAL"}})
    (part / "ghost.mp4").unlink()  # listed, missing: every stage logs it
    logs = DataLayout(root).logs_dir
    logs.mkdir()
    (logs / "generate_landmarks.jsonl").symlink_to("/dev/full")  # every write there: ENOSPC
    assert pipeline.main([str(root), "--workers", "1", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    summary = [line for line in out.splitlines() if line.startswith("generate_landmarks: done")]
    assert summary and "No space left on device" in summary[0] and "the only record" in summary[0]
    assert "warning: generate_landmarks: ghost:" in err
    assert (root / "folds.csv").is_file()  # the stages after it ran
    assert "ghost" in _log_lines(root, "generate_diffs")
