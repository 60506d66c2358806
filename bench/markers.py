"""Stage-marker benchmark: what checking "already complete" costs on a DFDC-sized DATA_ROOT.

Builds a DATA_ROOT of ``--originals`` originals with ``--fakes`` fakes each (sparse 4 MiB video
files, so they are fingerprinted by size and mtime as DFDC's are), ``--crops`` crop files per video
and one diff per fake crop, writes every stage-2/3/4 item's marker as the runner does, then times a
rerun of each stage that finds everything complete (scan + fingerprints + marker checks, no work).
Also reports the marker sizes against markers that would list every input file with its size and
mtime instead of one digest per folder.

    python bench/markers.py [--originals 2000 --fakes 5 --crops 30] [--write-docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, write_section  # noqa: E402
from datasets.layout import DataLayout, crop_name  # noqa: E402
from preprocessing import extract_crops, generate_diffs, generate_landmarks  # noqa: E402
from preprocessing.runner import _write_marker, input_fingerprints, run_stage  # noqa: E402

SECTION = "## Stage markers"
VIDEO_BYTES = 4 << 20  # sparse: no disk space, but above the content-hash limit like a real video
STAGES = (("extract_crops", extract_crops.STAGE, {"every": 10}),
          ("generate_landmarks", generate_landmarks.STAGE, {"device": "cpu"}),
          ("generate_diffs", generate_diffs.STAGE, {}))


def build_root(root: Path, n_originals: int, n_fakes: int, n_crops: int) -> int:
    """The DATA_ROOT described above; returns the number of crop files."""
    layout = DataLayout(root)
    part = layout.part_dir(0)
    part.mkdir(parents=True)
    metadata = {}
    n_files = 0
    for o in range(n_originals):
        original = f"orig{o:06d}"
        videos = [original] + [f"{original}_fake{f}" for f in range(n_fakes)]
        metadata[f"{original}.mp4"] = {"label": "REAL", "split": "train"}
        for fake in videos[1:]:
            metadata[f"{fake}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{original}.mp4"}
        boxes = {str(10 * i): [[10.0, 10.0, 90.0, 110.0, 0.999]] for i in range(n_crops)}
        layout.boxes_path(original).parent.mkdir(exist_ok=True)
        layout.boxes_path(original).write_text(json.dumps(boxes))
        for video in videos:
            with open(part / f"{video}.mp4", "wb") as handle:
                handle.truncate(VIDEO_BYTES)
            layout.crops_dir(video).mkdir(parents=True)
            for i in range(n_crops):
                layout.crop_path(video, 10 * i, 0).touch()
                n_files += 1
        for fake in videos[1:]:
            layout.diffs_dir(fake).mkdir(parents=True)
            for i in range(n_crops):
                layout.diff_path(fake, 10 * i, 0).touch()
        landmarks = [layout.landmarks_path(original, 10 * i, 0) for i in range(n_crops)]
        landmarks += [layout.landmarks68_path(original, 10 * i, 0) for i in range(n_crops)]
        for path in landmarks:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    (part / "metadata.json").write_text(json.dumps(metadata))
    return n_files


def item_outputs(layout: DataLayout, name: str, item) -> list[Path]:
    if name == "extract_crops":
        return [layout.crops_dir(v.video_id) / crop_name(f, 0) for v in item.videos
                for f, _ in layout.crop_files(v.video_id)]
    if name == "generate_landmarks":
        return sorted(layout.landmarks_dir(item.key).iterdir()) + sorted(layout.landmarks68_dir(item.key).iterdir())
    return [p for fake in item.videos[1:] for p in sorted(layout.diffs_dir(fake.video_id).iterdir())]


def per_file_inputs(layout: DataLayout, stage, item, options) -> dict[str, list[int]]:
    """The alternative: every file under every input folder with its size and mtime_ns."""
    entries = {}
    for path in stage.inputs(layout, item, options):
        relative = os.path.relpath(path, layout.root)
        if os.path.isdir(path):
            with os.scandir(path) as found:
                for entry in sorted(found, key=lambda e: e.name):
                    info = entry.stat()
                    entries[f"{relative}/{entry.name}"] = [info.st_size, info.st_mtime_ns]
        else:
            info = os.stat(path)
            entries[relative] = [info.st_size, info.st_mtime_ns]
    return entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=2000)
    parser.add_argument("--fakes", type=int, default=5, help="fakes per original")
    parser.add_argument("--crops", type=int, default=30, help="crops per video")
    parser.add_argument("--repeats", type=int, default=3, help="timed reruns per stage (median reported)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build DATA_ROOT (default: a temp dir)")
    parser.add_argument("--write-docs", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_markers_", dir=args.workdir) as tmp:
        root = Path(tmp) / "data"
        started = time.perf_counter()
        n_crops = build_root(root, args.originals, args.fakes, args.crops)
        build_s = time.perf_counter() - started
        layout = DataLayout(root)
        rows = []
        for name, stage, options in STAGES:
            items, _ = stage.list_items(layout, options)
            digest_bytes = per_file_bytes = 0
            for item in items:
                inputs = input_fingerprints(layout, stage, item, options)
                _write_marker(layout, stage, item, options, item_outputs(layout, name, item), inputs)
                digest_bytes += len(json.dumps(inputs))
                per_file_bytes += len(json.dumps(per_file_inputs(layout, stage, item, options)))
            times = []
            for _ in range(args.repeats):
                summary = run_stage(stage, root, options, workers=1, progress=False)
                assert summary.skipped == len(items) and summary.done == summary.failed == 0, summary.line()
                times.append(summary.elapsed_s)
            per_file_s = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                for item in items:
                    per_file_inputs(layout, stage, item, options)
                per_file_s.append(time.perf_counter() - started)
            rows.append((name, len(items), statistics.median(times), digest_bytes / len(items),
                         per_file_bytes / len(items), statistics.median(per_file_s)))

    n_videos = args.originals * (1 + args.fakes)
    lines = [f"Command: `python bench/markers.py --originals {args.originals} --fakes {args.fakes} --crops "
             f"{args.crops} --repeats {args.repeats} --write-docs docs/benchmarks.md`. Machine: {machine_description()}.", "",
             f"A DATA_ROOT of {args.originals} originals with {args.fakes} fakes each ({n_videos} videos, sparse "
             f"4 MiB files), {args.crops} crops per video ({n_crops} crop files, empty: a stat costs the same), landmarks "
             f"and diffs to match, built "
             f"in {build_s:.0f} s; every item's marker in place. Each row is a rerun of the stage that finds "
             f"every item complete (median of {args.repeats}, page cache warm: the files were just written). "
             f"Inputs fingerprinted per item: stage 2 the boxes JSON (SHA-256) and {1 + args.fakes} videos (size, "
             f"mtime); stage 3 the original's crop folder and boxes; stage 4 {1 + args.fakes} crop folders.", "",
             "| stage rerun, all complete | items | time (s) | per item (ms) | marker inputs, bytes per item: "
             "one digest per folder | the same, one entry per file | building the per-file entries alone (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, n_items, seconds, digest_bytes, per_file_bytes, per_file_s in rows:
        lines.append(f"| {name} | {n_items} | {seconds:.2f} | {1000 * seconds / n_items:.2f} | {digest_bytes:.0f} "
                     f"| {per_file_bytes:.0f} | {per_file_s:.2f} |")
    largest = max(rows, key=lambda row: row[4] / row[3])
    lines += ["", f"A rerun's check costs one stat per input file (a folder digest stats each file once) and one "
              f"listing per output folder. Entries per file would need the same stats and make the markers "
              f"up to {largest[4] / largest[3]:.0f}x larger ({largest[0]}), so markers hold one digest per folder."]
    print("\n".join(lines))
    if args.write_docs:
        write_section(args.write_docs, SECTION, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
