"""Preprocessing benchmark: stage 1 (default) against the original recipe's way, then stages 2-5.

Stage 1 default (``--recipe original``): MTCNN only on the frames stage 2 crops (every 10th), halved
with PIL as the recipe did, faces largest first, decoding on a reader thread (the next video decoded
while this one is detected), on the CPU the separable max pooling and 8 frames per MTCNN call; one
process, and one per core; also ``--recipe fast`` (OpenCV's area filter) and the resolution rule
(--scale auto). Baseline (the original recipe): decode every frame, halve it with PIL, facenet-pytorch's
MTCNN as it ships (largest face first) on every frame in batches of 32, one process.
Both run on the same videos in the same run; boxes of the frames both detect are matched (greedy by
IoU) and their IoU reported, and the share of frames whose integer boxes (what the crops are cut
with) are the baseline's.

    python bench/preprocess.py                       # sample set (generated) + ../shared/data/real_small
    python bench/preprocess.py --sample-root DIR --real-root DIR --write-docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, write_section  # noqa: E402
from core.video import iter_frames  # noqa: E402
from datasets.layout import DataLayout  # noqa: E402
from faces.mtcnn import THRESHOLDS_PREPROCESS, FaceDetector  # noqa: E402
from preprocessing.detect_original_faces import (  # noqa: E402
    DEFAULT_RECIPE,
    DEFAULT_SCALE,
    _detector,
    detect_original_faces,
    load_boxes,
)
from preprocessing.extract_crops import extract_crops  # noqa: E402
from preprocessing.generate_diffs import generate_diffs  # noqa: E402
from preprocessing.generate_folds import generate_folds  # noqa: E402
from preprocessing.generate_landmarks import generate_landmarks  # noqa: E402
from preprocessing.runner import default_workers  # noqa: E402

SECTION = "## Preprocessing"
DEFAULT_REAL_ROOT = REPO_ROOT.parent / "shared" / "data" / "real_small"


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(ours, theirs) -> tuple[list[float], int]:
    """Greedy one-to-one matching by IoU; returns the IoUs of matched pairs and the unmatched count."""
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(ours) for j, b in enumerate(theirs)), reverse=True)
    used_a, used_b, ious = set(), set(), []
    for value, i, j in pairs:
        if value > 0 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            ious.append(value)
    return ious, len(ours) + len(theirs) - 2 * len(ious)


def baseline_stage1(videos: list[Path], device: str) -> tuple[dict[str, dict], float, int]:
    """The original recipe: every frame decoded and halved with PIL, facenet-pytorch's MTCNN as it ships
    (largest face first) on every frame, batches of 32, one process."""
    detector = FaceDetector(THRESHOLDS_PREPROCESS, device=device, batch_size=32, fast_pooling=False,
                            fast_resampling=False, resize="pil", face_order="area")
    started = time.perf_counter()
    results, n_frames = {}, 0
    for path in videos:
        boxes, batch, indices = {}, [], []
        for index, frame in iter_frames(path):
            batch.append(frame)
            indices.append(index)
            if len(batch) == 32:
                boxes.update(zip(indices, detector.detect(batch, scale=0.5)))
                batch, indices = [], []
        if batch:
            boxes.update(zip(indices, detector.detect(batch, scale=0.5)))
        n_frames += len(boxes)
        results[path.stem] = boxes
    return results, time.perf_counter() - started, n_frames


def linked_root(source: Path, workdir: Path) -> Path:
    """A fresh DATA_ROOT whose parts are symlinks to ``source``'s (outputs go to ``workdir``)."""
    root = workdir / "data"
    root.mkdir(parents=True)
    for part in DataLayout(source).parts():
        (root / part.name).symlink_to(part.resolve(), target_is_directory=True)
    return root


def bench_dataset(name: str, source: Path, device: str, workers: int) -> list[str]:
    layout = DataLayout(source)
    entries, _ = layout.scan()
    reals = [e for e in entries if not e.is_fake]
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        rows = []
        roots = {}
        _detector(device, DEFAULT_RECIPE)  # load the in-process models once, outside the timings (as the baseline's)
        _detector(device, "fast")
        # each run on a fresh output folder: default stage 1 with one process and with all cores, the fast
        # recipe, and the default frames with the resolution rule (--scale auto)
        runs = sorted({(1, DEFAULT_SCALE, DEFAULT_RECIPE), (workers, DEFAULT_SCALE, DEFAULT_RECIPE)}) \
            + [(1, DEFAULT_SCALE, "fast"), (1, "auto", DEFAULT_RECIPE)]
        for n_workers, scale, recipe in runs:
            root = linked_root(source, Path(tmp) / f"stage1_w{n_workers}_{scale}_{recipe}")
            summary = detect_original_faces(root, workers=n_workers, progress=False, device=device, scale=scale,
                                            recipe=recipe)
            n_frames = sum(len(load_boxes(DataLayout(root), e.video_id)) for e in reals)
            label = f"--recipe {recipe}, every 10th frame, scale {scale}"
            if (scale, recipe) == (DEFAULT_SCALE, DEFAULT_RECIPE):
                label = "default: " + label
            processes = "1 process" if n_workers == 1 else f"{n_workers} processes"
            rows.append((f"{label}, {processes}, {device}", len(reals) / summary.elapsed_s,
                         n_frames / summary.elapsed_s, summary.elapsed_s, summary.failed))
            roots[(n_workers, scale, recipe)] = root
        default_root = roots[(workers, DEFAULT_SCALE, DEFAULT_RECIPE)]
        baseline, baseline_s, baseline_frames = baseline_stage1([e.path for e in reals], device)
        rows.append((f"baseline (every frame, PIL 0.5x, batch 32), 1 process, {device}", len(reals) / baseline_s,
                     baseline_frames / baseline_s, baseline_s, 0))

        def compare(root: Path) -> str:
            ious, unmatched, common, same_int = [], 0, 0, 0
            for entry in reals:
                ours = load_boxes(DataLayout(root), entry.video_id)
                theirs = baseline[entry.video_id]
                for frame, boxes in ours.items():
                    if frame in theirs:
                        common += 1
                        same_int += ([[int(v) for v in b[:4]] for b in boxes or []]
                                     == [[int(v) for v in b[:4]] for b in ([] if theirs[frame] is None
                                                                           else theirs[frame].tolist())])
                        got, miss = match_boxes(boxes or [], [] if theirs[frame] is None else theirs[frame].tolist())
                        ious += got
                        unmatched += miss
            values = np.array(ious) if ious else np.zeros(1)
            return (f"{common} common frames, {len(ious)} boxes matched, {unmatched} unmatched; IoU min "
                    f"{values.min():.3f}, median {np.median(values):.3f}, "
                    f"{100 * np.mean(values >= 0.95):.0f}% of matched boxes >= 0.95; integer boxes (the crops) "
                    f"identical on {same_int} of {common} frames")

        lines.append(f"### {name}: {len(reals)} real videos ({len(entries)} listed), stage 1")
        lines.append("")
        lines.append("| stage 1 | videos/s | detected frames/s | time (s) | failed |")
        lines.append("|---|---:|---:|---:|---:|")
        for label, vps, fps, seconds, failed in rows:
            lines.append(f"| {label} | {vps:.3f} | {fps:.1f} | {seconds:.1f} | {failed} |")
        lines.append("")
        speedups = ", ".join(f"{row[1] / rows[-1][1]:.1f}x ({row[0].rsplit(', ', 1)[0]})" for row in rows[:-1])
        lines.append(f"Speed-up over the baseline in videos/s: {speedups}. Goal: the default at least 5x with "
                     f"the same boxes; the one-process row is the per-process rate that a long run settles to, "
                     f"the all-cores row includes starting the worker processes.")
        lines.append("")
        lines.append(f"- Default (--recipe original, every 10th frame at {DEFAULT_SCALE}x) vs baseline: "
                     f"{compare(default_root)}.")
        lines.append(f"- --recipe fast (OpenCV's area filter, faces by score) vs baseline: "
                     f"{compare(roots[(1, DEFAULT_SCALE, 'fast')])}.")
        lines.append(f"- Scale auto vs baseline 0.5x (different detector input, so boxes move): "
                     f"{compare(roots[(1, 'auto', DEFAULT_RECIPE)])}.")
        lines.append("")

        lines.append(f"| {name}: stages 2-5 ({workers} processes, {device}) | videos | videos/s | time (s) | failed |")
        lines.append("|---|---:|---:|---:|---:|")
        for stage_name, run in (("2 extract_crops", lambda: extract_crops(default_root, workers, progress=False)),
                                ("3 generate_landmarks",
                                 lambda: generate_landmarks(default_root, workers, progress=False, device=device)),
                                ("4 generate_diffs", lambda: generate_diffs(default_root, workers, progress=False)),
                                ("5 generate_folds", lambda: generate_folds(default_root, progress=False))):
            summary = run()
            videos = len(entries) if stage_name.startswith("5") else summary.videos_done
            lines.append(f"| {stage_name} | {videos} | {videos / summary.elapsed_s:.2f} | "
                         f"{summary.elapsed_s:.1f} | {summary.failed} |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-root", type=Path, default=None,
                        help="a DATA_ROOT made by make_sample_dataset (default: generate one, default settings)")
    parser.add_argument("--real-root", type=Path, default=DEFAULT_REAL_ROOT,
                        help="the real clips (skipped when absent)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--write-docs", type=Path, default=None, help="replace the Preprocessing section here")
    args = parser.parse_args(argv)

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    body = [f"Command: `make bench` (`python bench/preprocess.py --write-docs docs/benchmarks.md`). "
            f"Machine: {machine_description()}.", ""]
    with tempfile.TemporaryDirectory(prefix="bench_sample_") as tmp:
        sample_root = args.sample_root
        datasets = []
        if sample_root is None:
            from sample_data.make_sample_dataset import generate_sample_dataset

            sample_root = Path(tmp) / "sample"
            generate_sample_dataset(sample_root, progress=False)
            datasets.append(("sample set (make_sample_dataset defaults: 640x360, 25 fps, 3 s)", sample_root))
        else:
            datasets.append((f"sample set ({sample_root})", sample_root))
        if (args.real_root / "dfdc_train_part_0").is_dir():
            datasets.append(("real clips (real_small: FF++ 640x480 and 1280x720, DFDC 1920x1080)", args.real_root))
        for device in devices:
            for name, root in datasets:
                print(f"benchmarking {name} on {device} ...", file=sys.stderr, flush=True)
                body += bench_dataset(name, root, device, args.workers)
        if "cuda" not in devices:
            body += ["GPU rows: not measured (no GPU here).", ""]
        body += ["Notes: one-process rows exclude loading the model once (so does the baseline); rows with "
                 "several processes include starting them (each worker imports torch and loads "
                 "its model, seconds per worker), which weighs heavily on inputs this small and not on a DFDC "
                 "part. Times are wall clock on the machine above; on a shared machine compare rows of the same "
                 "run only. Failed items in the real-clips rows are the fake whose original is missing "
                 "(logged, as intended).", ""]
    print("\n".join(body))
    if args.write_docs:
        write_section(args.write_docs, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
