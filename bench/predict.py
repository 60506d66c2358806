"""Prediction benchmark: the folder predictor against the winner preset, on the same videos in one run.

Rows (all with the same models and frames per video):

* baseline: the ``winner`` preset (the DFDC winning submission's predictor step by step: frames
  truncated, halved with PIL, MTCNN one frame per call, faces largest first, truncated resize, at
  most 4 x frames - 1 faces in one classifier call, NCHW weights), one video after the other; on the
  parity checkpoint its scores are the original predictor's (``tests/prediction/test_parity.py``);
* the preset with the folder pipeline: the next videos decoded in a reader thread, one video's faces
  classified in a classifier thread while the next is detected (the same scores);
* + the speed settings: MTCNN batched over the video's frames (8 per call on the CPU, 32 on a GPU),
  channels-last weights, classifier batches sized for the device (8 faces on the CPU, 64 on a GPU);
* the ``default`` preset (also rounded frame indices, OpenCV's area filter and the resolution-rule
  detector scale, faces by score, rounded resize, no face cap);
* + a larger minimum face size.

Per row: seconds per video end to end (wall clock over the set) and the decode / detect / classify
split (time spent in each stage per video; in the pipelined rows the three overlap),
the speed-up over the baseline, and how far the video scores move from the baseline's.

    python bench/predict.py                                  # CPU: the parity checkpoint (else random Lite0)
    python bench/predict.py --device cuda --encoder tf_efficientnet_b7_ns --size 380 --models 7
    python bench/predict.py --device cuda --checkpoints weights/final_*   # the winner's seven files
    python bench/predict.py --write-docs docs/benchmarks.md

Videos: ../shared/data/real_small (when present) and the sample set's test videos (``--sample-root``,
default: generated into a temporary folder with the generator's default settings). Models: the
``--checkpoints`` given, else ``../shared/parity``'s winner-format Lite0 when present and the run is one
Lite0 at 224 px, else random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.common import machine_description, max_score_change, write_section  # noqa: E402
from core.devices import resolve_device  # noqa: E402
from core.video import probe_video  # noqa: E402
from datasets.layout import DataLayout  # noqa: E402
from models.checkpoints import LoadedModel, load_model  # noqa: E402
from models.classifier2d import DeepFakeClassifier  # noqa: E402
from models.registry import input_spec  # noqa: E402
from prediction.options import resolve_options  # noqa: E402
from prediction.predictor import VideoPredictor, list_videos, predict_on_video_set, resolve_dtype  # noqa: E402

SECTION = "## Prediction"
DEFAULT_REAL_ROOT = REPO_ROOT.parent / "shared" / "data" / "real_small"
PARITY_CHECKPOINT = REPO_ROOT.parent / "shared" / "parity" / "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"
SCORE_TOLERANCE = 1e-3


def make_models(encoder: str, size_px: int, count: int, device: str) -> list[LoadedModel]:
    """Random-weight classifiers (the speed of a model does not depend on its weights)."""
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        model = DeepFakeClassifier(encoder).eval().to(device)
        spec = input_spec({"encoder": encoder, "size": size_px})
        models.append(LoadedModel(model, encoder, spec, Path(f"random_{encoder}_{seed}")))
    return models


def run_config(name: str, videos: list[Path], models: list[LoadedModel], options, prefetch: int) -> dict:
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
    split = {stage: sum(p.timings_s.get(stage, 0.0) for p in predictions) / n
             for stage in ("decode", "detect", "classify")}
    return {"name": name, "wall_s": wall_s, "s_per_video": wall_s / n, "cpu_s_per_video": cpu_s / n,
            "videos_per_s": n / wall_s, "faces": {p.name: p.n_faces for p in predictions},
            "split_s_per_video": split, "faces_per_video": float(np.mean([p.n_faces for p in predictions])),
            "fallbacks": sum(p.fell_back for p in predictions),
            "scores": {p.name: p.probability for p in predictions}}


def markdown(results: list[dict], meta: dict) -> list[str]:
    base = results[0]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; {meta['n_videos']} videos ({meta['videos']}), "
        f"{meta['frames_per_video']} frames per video, {meta['model_description']} ({meta['precision']}), "
        f"strategy `confident`. Command: `{meta['command']}`.",
        "",
        "| run | s / video | CPU s / video | videos / s | vs baseline | decode s | detect s | classify s "
        "| faces / video | max abs score change vs baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delta = max_score_change(r["scores"], base["scores"])
        s = r["split_s_per_video"]
        lines.append(f"| {r['name']} | {r['s_per_video']:.2f} | {r['cpu_s_per_video']:.2f} | {r['videos_per_s']:.3f} | "
                     f"{base['s_per_video'] / r['s_per_video']:.2f}x | {s['decode']:.2f} | {s['detect']:.2f} | "
                     f"{s['classify']:.2f} | {r['faces_per_video']:.1f} | {delta:.2e} |")
    return lines


def collect_videos(args) -> tuple[list[Path], str, tempfile.TemporaryDirectory | None]:
    videos: list[Path] = []
    parts = []
    real = DataLayout(args.real_root).part_dir(0)
    if real.is_dir():
        found = list_videos(real)
        videos += found
        sizes = sorted({f"{probe_video(v).width}x{probe_video(v).height}" for v in found})
        parts.append(f"{len(found)} real clips {', '.join(sizes)}")
    tmp = None
    sample_root = args.sample_root
    if sample_root is None and not args.no_sample:
        from sample_data.make_sample_dataset import generate_sample_dataset

        tmp = tempfile.TemporaryDirectory(prefix="bench_predict_")
        sample_root = Path(tmp.name) / "sample"
        # only test_videos/ is used: the smallest train part the generator allows
        generate_sample_dataset(sample_root, parts=1, reals_per_part=1, test_videos=12, progress=False)
    if sample_root is not None:
        found = list_videos(DataLayout(sample_root).test_videos_dir)
        videos += found
        if found:
            info = probe_video(found[0])
            parts.append(f"{len(found)} sample test videos {info.width}x{info.height}, "
                         f"{info.frame_count} frames")
    return videos, "; ".join(parts), tmp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-root", type=Path, default=DEFAULT_REAL_ROOT)
    parser.add_argument("--sample-root", type=Path, default=None, help="DATA_ROOT with test_videos/")
    parser.add_argument("--no-sample", action="store_true", help="only the real clips")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224, help="model input px")
    parser.add_argument("--models", type=int, default=1, help="ensemble size (random weights)")
    parser.add_argument("--checkpoints", nargs="+", type=Path, default=None,
                        help="real checkpoints instead (e.g. the winner's seven files)")
    parser.add_argument("--frames-per-video", type=int, default=32)
    parser.add_argument("--large-min-face", type=int, default=40, help="min face size of the last row (px)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--write-docs", type=Path, default=None, help="replace the Prediction section here")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)

    videos, description, tmp = collect_videos(args)
    if not videos:
        print("no videos: pass --real-root or --sample-root", file=sys.stderr)
        return 2
    if args.checkpoints is None and PARITY_CHECKPOINT.is_file() and args.models == 1 \
            and (args.encoder, args.size) == ("tf_efficientnet_lite0", 224):
        args.checkpoints = [PARITY_CHECKPOINT]
    if args.checkpoints:
        models = [load_model(path, device=args.device) for path in args.checkpoints]
        model_description = (f"{len(models)} checkpoint(s) " + ", ".join(f"{m.path.name} ({m.input_size} px)"
                                                                         for m in models))
    else:
        models = make_models(args.encoder, args.size, args.models, args.device)
        model_description = f"{args.models} x {args.encoder} at {args.size} px (random weights)"
    common = dict(device=args.device, precision=args.precision, frames_per_video=args.frames_per_video)
    speed = dict(detector_batch_size=None, channels_last=True, classifier_batch_size=None)
    configs = [
        ("baseline: winner preset, one video after the other", resolve_options("winner", **common), 0),
        ("winner preset, reader + classifier threads", resolve_options("winner", **common), 2),
        ("+ batched MTCNN, channels-last, device-sized classifier batches",
         resolve_options("winner", **common, **speed), 2),
        ("default preset", resolve_options("default", **common), 2),
        (f"+ min face {args.large_min_face} px",
         resolve_options("default", **common, min_face_size_px=args.large_min_face), 2),
    ]
    results = []
    for name, options, prefetch in configs:
        print(f"running: {name}", file=sys.stderr)
        results.append(run_config(name, videos, models, options, prefetch))
        r = results[-1]
        print(f"  {r['s_per_video']:.2f} s/video  split {r['split_s_per_video']}", file=sys.stderr)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    meta = {"date": time.strftime("%Y-%m-%d"),
            "machine": f"{machine_description()}; {torch.get_num_threads()} torch threads, "
                       f"load average at the end {load}",
            "n_videos": len(videos), "videos": description, "frames_per_video": args.frames_per_video,
            "model_description": model_description,
            "precision": str(resolve_dtype(args.precision, args.device)).replace("torch.", ""),
            "command": "python " + " ".join(["bench/predict.py"] + (argv if argv is not None else sys.argv[1:]))}
    lines = markdown(results, meta)
    equal = [r for r in results[1:] if max_score_change(r["scores"], results[0]["scores"]) <= SCORE_TOLERANCE]
    fastest_equal = min(equal, key=lambda r: r["s_per_video"]) if equal else results[0]
    lines.append("")
    lines.append(f"Rows within {SCORE_TOLERANCE:g} of the baseline's scores: "
                 + (", ".join(r["name"] for r in equal) if equal else "none") + ".")
    equal_speedup = results[0]["s_per_video"] / fastest_equal["s_per_video"]
    goal = 3.0 if gpu else 1.5
    lines += ["", f"Goal at equal scores: {goal:g}x the baseline's videos/s on {'GPU' if gpu else 'CPU'}; measured "
              f"{equal_speedup:.2f}x ({fastest_equal['name']}; {'met' if equal_speedup >= goal else 'not met'}).",
              "", "What each row changes: the folder pipeline overlaps decoding, detection and classification "
              "(it fills the gaps; the three stages share the cores); MTCNN fed several frames per call keeps its "
              "image pyramid in cache, but its boxes are not bit-identical to single-frame calls; channels-last "
              "weights make Lite0 about 1.5x faster on the CPU and move scores by about 1e-7; the default preset's "
              "resolution-rule scale runs 640 px videos at 1x and 1080p ones at 0.33x (it pays off on DFDC-like "
              "1080p test sets, costs time on small videos) and OpenCV's area filter is much cheaper than PIL's "
              "bicubic on 1080p frames; a larger minimum face size starts the MTCNN image pyramid at a smaller "
              "scale. Every row uses the separable MTCNN max pooling on the CPU (bit-identical boxes)."]
    if gpu is None:
        lines += ["", "GPU rows (7 x tf_efficientnet_b7_ns at 380 px, fp16, like the winning submission; goals: "
                  "3x the baseline's videos/s and at most 0.5 s per 10 s 1080p clip on one H100): not measured "
                  "(no GPU here). Command: `python bench/predict.py --device cuda --encoder tf_efficientnet_b7_ns "
                  "--size 380 --models 7` (random weights), or `--checkpoints weights/final_*` with the winner's "
                  "seven files (`./download_weights.sh`)."]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    if args.write_docs:
        write_section(args.write_docs, SECTION, lines)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
