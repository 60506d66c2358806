"""Prediction benchmark: this project's presets against the DFDC winner's original predictor, measured in the
same run on the same clips, the same checkpoint and the same cores.

The reference is the original itself: ``../shared/parity/original/run_original.py`` (the winner's
``kernel_utils.py``, six videos in flight in threads, run on the CPU; never copied into this project).
Three measurements, each its own section of ``docs/benchmarks.md``:

* ``speed`` (default): each row a whole process on the same folder of clips (the original; ``predict_folder.py``
  with a preset), rows alternating (forward, then backward, ...) over ``--repeats`` rounds; per row the
  process's wall time and CPU time, the time of its prediction loop alone, videos per second, the ratio to
  the original's videos per second, and how far its answers are from the original's (max |difference|,
  videos over 1e-3). Models: the parity checkpoint (a winner-format Lite0 at 224 px whose face scores spread
  over (0, 1), so that any change in frames, boxes or crops shows).
* ``--stages``: where the time goes, one video after the other (nothing overlapped), per stage (decode,
  detect, classify, aggregate; the original's rest: resizing for the detector outside MTCNN, crops, placing
  and normalising faces) for each preset and for the original (its own functions, timed by wrapping them).
* ``--laptop``: one 10 s 1080p clip with ``--models`` random-weight ``--encoder`` models at ``--size`` px
  (the winning submission's seven B7 at 380 px: random weights cost the same), seconds per clip for the
  default preset and the faster choices (fewer frames, fewer models, a smaller size), and what each costs
  in answers on the parity checkpoint (6 real clips).

    python bench/predict.py --clips ../shared/data/real_small --write-docs docs/benchmarks.md
    python bench/predict.py --stages --write-docs docs/benchmarks.md
    python bench/predict.py --laptop --encoder tf_efficientnet_b7_ns --size 380 --models 7 --write-docs docs/benchmarks.md

GPU rows are not measured here (``bench/gpu_check.sh`` measures the GPU case).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.common import machine_description, publish  # noqa: E402
from core.video import probe_video  # noqa: E402
from datasets.layout import DataLayout  # noqa: E402
from models.checkpoints import LoadedModel, load_model  # noqa: E402
from models.classifier2d import DeepFakeClassifier  # noqa: E402
from models.registry import input_spec  # noqa: E402
from prediction.options import resolve_options  # noqa: E402
from prediction.predictor import VideoPredictor, list_videos, predict_on_video_set  # noqa: E402

SECTION = "## Prediction"
STAGES_SECTION = "## Prediction: where the time goes"
LAPTOP_SECTION = "## Prediction: the laptop case"
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_REAL_ROOT = SHARED / "data" / "real_small"
PARITY_CHECKPOINT = SHARED / "parity" / "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"
ORIGINAL_DIR = SHARED / "parity" / "original"
ORIGINAL_RUNNER = ORIGINAL_DIR / "run_original.py"
SCORE_TOLERANCE = 1e-3
EXACT_TOLERANCE = 1e-6
ORIGINAL = "original"
# rows of the speed run: name -> predict_folder.py options (the original is its own runner)
PRESET_ROWS = {
    "winner": ["--preset", "winner"],
    "winner-one-at-a-time": ["--preset", "winner", "--videos-in-flight", "1"],
    "winner-fast": ["--preset", "winner-fast"],
    "default": ["--preset", "default"],
}
DEFAULT_ROWS = (ORIGINAL, "winner", "winner-fast", "default")
STAGES = ("decode", "detect", "classify", "aggregate")


# ---- speed: whole processes, alternating -------------------------------------------------------------


def link_clips(folders: list[Path], into: Path, limit: int | None) -> list[Path]:
    """Links to the videos of ``folders`` (each a folder of videos, or a DATA_ROOT whose first part holds
    them) in one folder, the runners' input; a name that two folders share gets its folder's name in front."""
    into.mkdir(parents=True, exist_ok=True)
    links = []
    for folder in folders:
        part = DataLayout(folder).part_dir(0)
        videos = [v for v in list_videos(part if part.is_dir() else folder) if v.suffix.lower() == ".mp4"]
        for video in videos[:limit]:
            name = video.name if not (into / video.name).exists() else f"{folder.name}_{video.name}"
            (into / name).symlink_to(video.resolve())
            links.append(into / name)
    return sorted(links)


def row_command(row: str, clips: Path, out_csv: Path, checkpoint: Path) -> list[str]:
    if row == ORIGINAL:
        return [sys.executable, str(ORIGINAL_RUNNER), str(checkpoint), str(clips), str(out_csv)]
    if row not in PRESET_ROWS:
        raise SystemExit(f"unknown row {row!r}; rows: {', '.join((ORIGINAL, *PRESET_ROWS))}")
    return [sys.executable, str(REPO_ROOT / "predict_folder.py"), "--test-dir", str(clips), "--output", str(out_csv),
            "--models", str(checkpoint), "--no-labels", "--no-progress", "--device", "cpu", *PRESET_ROWS[row]]


def run_row(row: str, clips: Path, work: Path, checkpoint: Path, round_index: int) -> dict:
    """One whole process of ``row``: wall and CPU seconds (its children's rusage), its loop's seconds, answers."""
    out_csv = work / f"{row.replace(' ', '_').replace(',', '')}_{round_index}.csv"
    log = out_csv.with_suffix(".log")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as sink:
        subprocess.run(row_command(row, clips, out_csv, checkpoint), cwd=REPO_ROOT, check=True, stdout=sink,
                       stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = out_csv.read_text().strip().splitlines()[1:]
    answers = {line.rsplit(",", 1)[0]: float(line.rsplit(",", 1)[1]) for line in lines}
    if row == ORIGINAL:  # it prints "original predictor: X s for N videos"
        loop_s = float(log.read_text().split("original predictor: ")[1].split(" s")[0])
    else:
        metrics = json.loads(out_csv.with_name(out_csv.stem + ".metrics.json").read_text()) \
            if out_csv.with_name(out_csv.stem + ".metrics.json").is_file() else None
        loop_s = metrics["seconds_per_video"] * len(answers) if metrics else float("nan")
    return {"row": row, "round": round_index, "wall_s": wall_s, "cpu_s": cpu_s, "loop_s": loop_s, "answers": answers}


def alternating(rows: list[str], repeats: int) -> list[tuple[int, str]]:
    """(round, row) in run order: forward in even rounds, backward in odd ones."""
    return [(r, row) for r in range(repeats) for row in (rows if r % 2 == 0 else rows[::-1])]


def answer_change(answers: dict[str, float], reference: dict[str, float]) -> tuple[float, int, int]:
    """(max |difference|, videos over 1e-3, videos over 1e-6) against ``reference``."""
    diffs = [abs(answers[name] - value) for name, value in reference.items()]
    return max(diffs), sum(d > SCORE_TOLERANCE for d in diffs), sum(d > EXACT_TOLERANCE for d in diffs)


def speed_lines(runs: list[dict], rows: list[str], meta: dict) -> list[str]:
    by_row = {row: [r for r in runs if r["row"] == row] for row in rows}
    median = {row: float(np.median([r["wall_s"] for r in rs])) for row, rs in by_row.items()}
    reference = by_row[ORIGINAL][0]["answers"] if ORIGINAL in by_row else None
    n = meta["n_videos"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; {n} clips ({meta['clips']}), 32 frames per video, the parity "
        f"checkpoint ({PARITY_CHECKPOINT.name}, Lite0 at 224 px, fp32), {meta['repeats']} round(s), rows alternating "
        f"(forward, then backward). Command: `{meta['command']}`.",
        "",
        "| run | process s (median) | videos / s | vs the original | CPU s / video | loop s | max abs difference "
        "vs the original | videos over 1e-3 | over 1e-6 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, rs in by_row.items():
        vps = n / median[row]
        ratio = median[ORIGINAL] / median[row] if ORIGINAL in median else float("nan")
        cpu = np.median([r["cpu_s"] for r in rs]) / n
        loop = np.median([r["loop_s"] for r in rs])
        change = answer_change(rs[0]["answers"], reference) if reference else (float("nan"), 0, 0)
        stable = all(r["answers"] == rs[0]["answers"] for r in rs)
        lines.append(f"| {row} | {median[row]:.1f} | {vps:.3f} | {ratio:.2f}x | {cpu:.2f} | {loop:.1f} | "
                     f"{change[0]:.1e}{'' if stable else ' (runs differ!)'} | {change[1]} | {change[2]} |")
    lines += ["", "Process s: the whole process (start, imports, model loading, every clip), the median over the "
              "rounds; videos / s and the ratio from it. Loop s: the prediction loop alone (the original's "
              "`predict_on_video_set`; this project's from its metrics file). CPU s: the process's user + system "
              "time (less sensitive to other load on a shared machine). Rows: `winner` the winner preset "
              "(several videos in flight, the default on the CPU); `winner-fast` the same with the classifier's "
              "faster arithmetic (batch normalisation folded, batches of 8 faces); "
              "`default` this project's preset. GPU rows: not measured (no GPU here; `bench/gpu_check.sh`)."]
    return lines


def run_speed(args, meta: dict) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        work = Path(tmp)
        clips = link_clips(args.clips, work / "clips", args.limit)
        if not clips:
            raise SystemExit(f"no .mp4 clips in {', '.join(map(str, args.clips))}")
        meta.update(n_videos=len(clips), clips=", ".join(str(c) for c in args.clips), repeats=args.repeats)
        runs = []
        for round_index, row in alternating(args.rows, args.repeats):
            print(f"round {round_index}: {row}", file=sys.stderr, flush=True)
            runs.append(run_row(row, work / "clips", work, args.checkpoint, round_index))
            print(f"  {runs[-1]['wall_s']:.1f} s (loop {runs[-1]['loop_s']:.1f} s)", file=sys.stderr, flush=True)
    meta["runs"] = runs
    return speed_lines(runs, list(dict.fromkeys(args.rows)), meta)


# ---- stages: one video after the other, per stage ----------------------------------------------------


def preset_stages(preset: str, clips: list[Path], model: LoadedModel) -> dict:
    """Per stage the wall and process-CPU seconds per video, one video after the other."""
    predictor = VideoPredictor(models=[model], options=resolve_options(preset, device="cpu"))
    predictor.predict_video(clips[0])  # warm-up
    wall = dict.fromkeys(STAGES, 0.0)
    cpu = dict.fromkeys(STAGES, 0.0)
    answers = {}
    for clip in clips:
        t0 = time.process_time()
        decoded = predictor.decode(clip)
        t1 = time.process_time()
        detected = predictor.detect_decoded(decoded)
        t2 = time.process_time()
        prediction = predictor.classify_detected(detected)
        t3 = time.process_time()
        # classify and aggregate share one process-time span: split it as their wall times split
        timings = prediction.timings_s
        share = timings["classify"] / max(1e-9, timings["classify"] + timings["aggregate"])
        for stage, seconds in (("decode", t1 - t0), ("detect", t2 - t1), ("classify", (t3 - t2) * share),
                               ("aggregate", (t3 - t2) * (1 - share))):
            cpu[stage] += seconds / len(clips)
        for stage in STAGES:
            wall[stage] += timings.get(stage, 0.0) / len(clips)
        answers[clip.name] = prediction.probability
    return {"wall": wall, "cpu": cpu, "answers": answers}


def timed(function: Callable, sink: dict, stage: str) -> Callable:
    """``function`` with its wall and process-CPU seconds added to ``sink[stage]``."""
    def wrapper(*args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            sink["wall"][stage] += time.perf_counter() - start
            sink["cpu"][stage] += time.process_time() - start_cpu
    return wrapper


def original_stages(clips: list[Path], checkpoint: Path) -> dict:
    """The original's own functions (``kernel_utils``, imported from ``../shared/parity/original``), one video
    after the other (one worker), with its frame reader, MTCNN call, model and strategy timed by wrapping them;
    ``other``: the rest (halving frames with PIL, crops, resizing and normalising the faces). The model is this
    project's loading of the same checkpoint (the winner's layout, the same numbers to 1e-7)."""
    sys.path.insert(0, str(ORIGINAL_DIR))
    import kernel_utils as original

    sink = {"wall": dict.fromkeys((*STAGES, "other"), 0.0), "cpu": dict.fromkeys((*STAGES, "other"), 0.0)}
    model = load_model(checkpoint, device="cpu").model.eval()
    reader = original.VideoReader()
    read = timed(lambda path: reader.read_frames(path, num_frames=32), sink, "decode")
    extractor = original.FaceExtractor(read)
    extractor.detector.detect = timed(extractor.detector.detect, sink, "detect")
    timed_model = timed(model, sink, "classify")
    strategy = timed(original.confident_strategy, sink, "aggregate")
    kwargs = dict(face_extractor=extractor, input_size=224, models=[timed_model], strategy=strategy,
                  frames_per_video=32, num_workers=1, test_dir=str(clips[0].parent))
    original.predict_on_video_set(videos=[clips[0].name], **kwargs)  # warm-up
    for times in sink.values():
        for stage in times:
            times[stage] = 0.0
    start, start_cpu = time.perf_counter(), time.process_time()
    probabilities = original.predict_on_video_set(videos=[c.name for c in clips], **kwargs)
    totals = {"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu}
    for kind, times in sink.items():
        times["other"] = totals[kind] - sum(times[s] for s in STAGES)
        for stage in times:
            times[stage] /= len(clips)
    return {**sink, "answers": {c.name: float(p) for c, p in zip(clips, probabilities)}}


def stage_lines(results: dict[str, dict], meta: dict) -> list[str]:
    reference = results[ORIGINAL]["answers"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; the {meta['n_videos']} clips of `real_small`, one video after "
        f"the other in one worker thread (nothing overlapped, so each stage's time is its own), 32 frames, the parity checkpoint (224 px, "
        f"fp32), after one warm-up video. Command: `{meta['command']}`.",
        "",
        "| run | decode s | detect s | classify s | aggregate s | other s | total s / video | CPU s / video "
        "| max abs difference vs the original |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        wall, cpu = r["wall"], r["cpu"]
        diff = max(abs(r["answers"][k] - v) for k, v in reference.items())
        lines.append(f"| {name} | " + " | ".join(f"{wall[s]:.2f}" for s in STAGES) + f" | {wall.get('other', 0.0):.2f} | "
                     f"{sum(wall.values()):.2f} | {sum(cpu.values()):.2f} | {diff:.1e} |")
    lines += ["", "Seconds per video (wall clock, one video at a time). This project's decode is one pass up to the "
              "last sampled frame, the colour conversion of the sampled ones only (H.264: PyAV, skipping the unwanted "
              "non-reference frames; else OpenCV); the original's is OpenCV's every frame up to the last; detect includes resizing the "
              "frames for MTCNN and cutting the crops; classify places, normalises and scores the faces; aggregate "
              "links faces into persons and pools the scores. The original's detect is its MTCNN call alone (its "
              "PIL halving and crops are in other)."]
    return lines


def run_stages(args, meta: dict) -> list[str]:
    clips = list_videos(DataLayout(args.real_root).part_dir(0))
    if not clips:
        raise SystemExit(f"no clips in {args.real_root}")
    meta["n_videos"] = len(clips)
    results = {ORIGINAL: original_stages(clips, args.checkpoint)}
    for preset in args.presets:
        print(f"stages: {preset}", file=sys.stderr, flush=True)
        # in one worker thread, as the original's one worker runs its video (torch ops there cost less than in
        # the main thread on a loaded machine)
        with ThreadPoolExecutor(max_workers=1) as worker:
            results[preset] = worker.submit(preset_stages, preset, clips,
                                            load_model(args.checkpoint, device="cpu")).result()
    meta["results"] = results
    return stage_lines(results, meta)


# ---- the laptop case ----------------------------------------------------------------------------------


def make_models(encoder: str, size_px: int, count: int, device: str = "cpu") -> list[LoadedModel]:
    """Random-weight classifiers (the speed of a model does not depend on its weights)."""
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        model = DeepFakeClassifier(encoder).eval().to(device)
        models.append(LoadedModel(model, encoder, input_spec({"encoder": encoder, "size": size_px}),
                                  Path(f"random_{encoder}_{seed}")))
    return models


def run_config(name: str, videos: list[Path], models: list[LoadedModel], options, prefetch: int) -> dict:
    """One in-process run of ``options`` over ``videos`` after a warm-up video (``bench/preset_gap.py``,
    ``bench/gpu_check.py``): wall and CPU seconds, the per-stage split, the answers."""
    predictor = VideoPredictor(models=models, options=options)
    predictor.predict_video(videos[0])  # warm-up (first-call allocations, lazy imports)
    if predictor.device.startswith("cuda"):
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    predictions = list(predict_on_video_set(predictor, videos, prefetch=prefetch))
    if predictor.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    n = len(predictions)
    split = {stage: sum(p.timings_s.get(stage, 0.0) for p in predictions) / n for stage in STAGES}
    return {"name": name, "wall_s": wall_s, "s_per_video": wall_s / n, "cpu_s_per_video": cpu_s / n,
            "videos_per_s": n / wall_s, "faces": {p.name: p.n_faces for p in predictions},
            "split_s_per_video": split, "faces_per_video": float(np.mean([p.n_faces for p in predictions])),
            "fallbacks": sum(p.fell_back for p in predictions),
            "scores": {p.name: p.probability for p in predictions}}


def laptop_choices(args) -> list[tuple[str, int, int, int]]:
    """(name, frames, models, size px) of each row: the full case, then each faster choice alone."""
    full = (args.frames_per_video, args.models, args.size)
    rows = [("as given", *full)]
    rows += [(f"{f} frames", f, args.models, args.size) for f in args.laptop_frames if f < args.frames_per_video]
    rows += [(f"{m} model(s)", args.frames_per_video, m, args.size) for m in args.laptop_models if m < args.models]
    rows += [(f"{s} px", args.frames_per_video, args.models, s) for s in args.laptop_sizes if s < args.size]
    return rows


def answer_costs(args, choices: list[tuple[str, int, int, int]]) -> dict[str, str]:
    """Per choice, how far the parity checkpoint's answers on the real clips move (default preset), the
    choice scaled to one Lite0 at 224 px (a size as the same fraction of 224 as of ``--size``)."""
    clips = list_videos(DataLayout(args.real_root).part_dir(0))
    if not clips or not args.checkpoint.is_file():
        return {}

    def answers(frames: int, size_px: int) -> dict[str, float]:
        loaded = load_model(args.checkpoint, device="cpu")
        loaded = LoadedModel(loaded.model, loaded.encoder, loaded.input_spec.replace(size_px=size_px), loaded.path)
        predictor = VideoPredictor(models=[loaded], options=resolve_options("default", device="cpu",
                                                                            frames_per_video=frames))
        return {p.name: p.probability for p in predict_on_video_set(predictor, clips)}

    full = answers(args.frames_per_video, 224)
    costs = {}
    for name, frames, models, size in choices[1:]:
        if models != args.models:
            costs[name] = "not measured (one parity checkpoint)"
            continue
        parity_size = int(round(224 * size / args.size / 32)) * 32
        moved = answers(frames, parity_size)
        diffs = [abs(moved[k] - v) for k, v in full.items()]
        costs[name] = (f"max {max(diffs):.3f}, mean {np.mean(diffs):.3f}"
                       + (f" (224 -> {parity_size} px)" if size != args.size else ""))
    return costs


def run_laptop(args, meta: dict) -> list[str]:
    clip = args.laptop_clip
    choices = laptop_choices(args)
    models = make_models(args.encoder, args.size, args.models)
    rows = []
    for name, frames, count, size in choices:
        chosen = models[:count] if size == args.size else make_models(args.encoder, size, count)
        predictor = VideoPredictor(models=chosen, options=resolve_options("default", device="cpu",
                                                                          frames_per_video=frames))
        start, start_cpu = time.perf_counter(), time.process_time()
        prediction = predictor.predict_video(clip)
        rows.append((name, frames, count, size, time.perf_counter() - start, time.process_time() - start_cpu,
                     prediction.timings_s, prediction.n_faces))
        print(f"laptop {name}: {rows[-1][4]:.1f} s", file=sys.stderr, flush=True)
    costs = answer_costs(args, choices)
    info = probe_video(clip)
    n_clips = len(list_videos(DataLayout(args.real_root).part_dir(0)))
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; one clip ({clip.name}, {info.width}x{info.height}, "
        f"{info.frame_count / info.fps:.0f} s), the default preset, "
        f"{args.models} x {args.encoder} at {args.size} px with random weights (the cost of a model does not depend "
        f"on its weights), fp32, one cold run per row (no warm-up: what a user waits). Command: `{meta['command']}`.",
        "",
        "| choice | frames | models | size px | s per clip | CPU s | decode s | detect s | classify s | faces "
        f"| answers moved (parity checkpoint, {n_clips} real clips) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, frames, count, size, wall, cpu, timings, faces in rows:
        lines.append(f"| {name} | {frames} | {count} | {size} | {wall:.1f} | {cpu:.1f} | {timings.get('decode', 0):.1f} | "
                     f"{timings.get('detect', 0):.1f} | {timings.get('classify', 0):.1f} | {faces} | "
                     f"{costs.get(name, '(reference)' if name == 'as given' else 'not measured')} |")
    lines += ["", "Answers moved: the largest and mean |probability change| of the parity checkpoint (one Lite0 at "
              "224 px) on the 6 `real_small` clips when the same choice is made there (a smaller size as the same "
              "fraction of 224 px); fewer models cannot be measured with one checkpoint."]
    return lines


# ---- command line -------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", type=Path, default=[DEFAULT_REAL_ROOT],
                        help="folders of .mp4 clips (or DATA_ROOTs whose first part holds them)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips per folder")
    parser.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), help=f"rows: {ORIGINAL}, "
                        + ", ".join(PRESET_ROWS))
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the rows, alternating")
    parser.add_argument("--checkpoint", type=Path, default=PARITY_CHECKPOINT)
    parser.add_argument("--stages", action="store_true", help="where the time goes, per stage")
    parser.add_argument("--presets", nargs="+", default=["winner", "default"], help="with --stages")
    parser.add_argument("--real-root", type=Path, default=DEFAULT_REAL_ROOT)
    parser.add_argument("--laptop", action="store_true", help="the laptop case: one 10 s 1080p clip")
    parser.add_argument("--laptop-clip", type=Path, default=DEFAULT_REAL_ROOT / "dfdc_train_part_0" / "lynaeydofd.mp4")
    parser.add_argument("--encoder", default="tf_efficientnet_b7_ns")
    parser.add_argument("--size", type=int, default=380, help="model input px")
    parser.add_argument("--models", type=int, default=7, help="ensemble size (random weights)")
    parser.add_argument("--frames-per-video", type=int, default=32)
    parser.add_argument("--laptop-frames", nargs="*", type=int, default=[16])
    parser.add_argument("--laptop-models", nargs="*", type=int, default=[1])
    parser.add_argument("--laptop-sizes", nargs="*", type=int, default=[256])
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--write-docs", type=Path, default=None, help="replace the section there")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for needed in (args.checkpoint, ORIGINAL_RUNNER):
        if not args.laptop and not needed.is_file():
            print(f"needs {needed} (../shared/parity)", file=sys.stderr)
            return 2
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    meta = {"date": time.strftime("%Y-%m-%d"),
            "machine": f"{machine_description()}; {torch.get_num_threads()} torch threads, load average at the "
                       f"start {load}",
            "command": "python " + " ".join(["bench/predict.py"] + (argv if argv is not None else sys.argv[1:]))}
    if args.laptop:
        section, lines = LAPTOP_SECTION, run_laptop(args, meta)
    elif args.stages:
        section, lines = STAGES_SECTION, run_stages(args, meta)
    else:
        section, lines = SECTION, run_speed(args, meta)
    lines.append("")
    lines.append(f"Load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}.")
    publish(section, lines, args.write_docs)
    if args.json:
        args.json.write_text(json.dumps(meta, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
