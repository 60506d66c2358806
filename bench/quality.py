"""Quality on real deepfakes: preprocess + train on FF++ (``ffpp_train``) minus two folds of identities
with each fake source (the validation fold picks the checkpoint, the test fold is never seen by training
or selection), then score the test fold and ``real_small`` (unseen FF++ identities and DFDC clips) with
the evaluation protocol.

    python bench/quality.py [--ffpp ../shared/data/ffpp_train] [--real-small ../shared/data/real_small]
        [--work output/bench_quality] [--recipes real self_blended both] [--seeds 111 555]
        [--config configs/ffpp_cpu.json] [--fold 0] [--val-fold 1] [--write-docs docs/benchmarks.md]

Every step goes through the user's commands (``preprocess_data.sh``, ``train.sh``, ``predict_folder.py``),
so their stage markers and ``--resume`` make a rerun redo only what is missing: a recipe and seed whose
training run is complete is not trained again (the table reports the time recorded when it was trained,
in WORK/train_seconds.json; preprocessing's time is that of this run, near 0 when nothing was left to do).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, write_section  # noqa: E402
from datasets.dfdc import METADATA_NAME  # noqa: E402
from datasets.layout import DataLayout  # noqa: E402
from models.checkpoints import read_checkpoint  # noqa: E402
from training.datasets.classifier_dataset import read_folds  # noqa: E402
from training.datasets.fake_sources import FAKE_SOURCES  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"
SECTION = "## Quality on real video (bench/quality.py)"
PART = "dfdc_train_part_0"


def _run(command: list[str], env: dict | None = None, log: Path | None = None) -> float:
    start = time.perf_counter()
    with open(log, "a") if log else open(os.devnull, "w") as sink:
        subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, check=True,
                       stdout=sink, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def recorded_time(path: Path, key: str, seconds: float) -> float:
    """The wall time of the run that trained ``key``: recorded the first time, read back on a rerun (when
    ``--resume`` finds the run complete and returns at once)."""
    times = json.loads(path.read_text()) if path.is_file() else {}
    if key not in times:
        times[key] = round(seconds, 1)
        path.write_text(json.dumps(times, indent=1))
    return float(times[key])


def held_out_folder(data_root: Path, fold: int, out: Path) -> Path:
    """A folder of links to the videos of ``fold`` with their metadata entries (the test set)."""
    folds = read_folds(data_root)
    videos = sorted(set(folds.loc[folds["fold"] == fold, "video"]))
    part = data_root / PART
    metadata = json.loads((part / METADATA_NAME).read_text())
    out.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for video in videos:
        name = f"{video}.mp4"
        link = out / name
        if not link.exists():
            link.symlink_to((part / name).resolve())
        chosen[name] = metadata[name]
    (out / METADATA_NAME).write_text(json.dumps(chosen, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ffpp", type=Path, default=SHARED / "ffpp_train")
    parser.add_argument("--real-small", type=Path, default=SHARED / "real_small")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "output" / "bench_quality")
    parser.add_argument("--recipes", nargs="+", default=list(FAKE_SOURCES.names()), choices=FAKE_SOURCES.names())
    parser.add_argument("--seeds", nargs="+", type=int, default=[111, 555])
    parser.add_argument("--config", default="configs/ffpp_cpu.json")
    parser.add_argument("--fold", type=int, default=0, help="test fold: left out of training and validation")
    parser.add_argument("--val-fold", type=int, default=1, help="validation fold: picks the _best checkpoint")
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    if args.val_fold == args.fold:
        parser.error(f"--val-fold {args.val_fold} is the test fold; pick another one")
    if not (args.ffpp / PART / METADATA_NAME).is_file():
        print(f"skipped: no FF++ videos at {args.ffpp} (pass --ffpp)")
        return 0

    work = args.work.resolve()
    data_root = work / "data"
    (data_root).mkdir(parents=True, exist_ok=True)
    if not (data_root / PART).exists():
        (data_root / PART).symlink_to((args.ffpp / PART).resolve())
    log = work / "quality.log"
    print(f"preprocessing {data_root} (log {log})", flush=True)
    preprocess_s = _run(["./preprocess_data.sh", str(data_root), "--workers", str(os.cpu_count() or 1),
                         "--no-progress"], log=log)
    test_dirs = [held_out_folder(data_root, args.fold, work / f"fold{args.fold}_videos")]
    if (args.real_small / PART / METADATA_NAME).is_file():
        test_dirs.append((args.real_small / PART).resolve())

    results = []
    for recipe in args.recipes:
        for seed in args.seeds:
            weights = work / "weights" / f"{recipe}_{seed}"
            env = {"WEIGHTS_DIR": str(weights), "LOG_DIR": str(work / "logs" / f"{recipe}_{seed}"),
                   "FOLD": str(args.val_fold), "TEST_FOLD": str(args.fold),
                   "TRAIN_ARGS": f"--set fakes={recipe}"}
            print(f"training {recipe} seed {seed}", flush=True)
            train_s = _run(["./train.sh", "--resume", str(data_root), "0", args.config, str(seed)], env, log)
            train_s = recorded_time(work / "train_seconds.json", f"{recipe}_{seed}", train_s)
            best = sorted(weights.glob("*_best"))
            output = work / "predictions" / f"{recipe}_{seed}.csv"
            output.parent.mkdir(parents=True, exist_ok=True)
            print(f"predicting {recipe} seed {seed}", flush=True)
            predict_s = _run([sys.executable, "predict_folder.py", "--test-dir", *map(str, test_dirs),
                              "--models", str(best[0]), "--output", str(output), "--no-progress"], log=log)
            evaluation = json.loads(output.with_name(output.stem + ".metrics.json").read_text())["evaluation"]
            results.append((recipe, seed, train_s, predict_s, evaluation, validation_of(best[0])))

    body = [f"Command: `python bench/quality.py --recipes {' '.join(args.recipes)} --seeds "
            f"{' '.join(map(str, args.seeds))}` (config `{args.config}`, test fold {args.fold}, validation fold "
            f"{args.val_fold}).",
            f"Machine: {machine_description()}.",
            f"Preprocessing `ffpp_train` ({DataLayout(data_root).root.name}): {preprocess_s:.0f} s "
            "(this run; near 0 when its stage markers were already complete).", "",
            "Video AUC / AP / log loss; held-out = the FF++ identities of the test fold (never trained on, never "
            "used to pick a checkpoint: the validation fold does that); "
            "real_small = 4 FF++ clips of unseen identities + 2 DFDC clips (6 clips: a sanity check, too few "
            "to measure a cross-dataset AUC). Goals: held-out AUC >= 0.90 and log loss <= 0.45; cross-dataset "
            "AUC >= 0.80; self-blended at least as good as real fakes cross-dataset. `train s` is the wall time "
            "recorded when the run trained (slower when other work shared the cores).", "",
            "| recipe | seed | train s | predict s | best epoch | val AUC | val bal. LL | held-out AUC | AP | LL "
            "| real_small AUC | AP | LL | face AUC held-out |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for recipe, seed, train_s, predict_s, evaluation, (epoch, val_auc, val_ll) in results:
        per_folder = evaluation["per_folder"] or {test_dirs[0].name: evaluation["overall"]}
        held_out = per_folder[test_dirs[0].name]  # the folder keys: each folder's name (they differ here)
        others = [scores for key, scores in per_folder.items() if key != test_dirs[0].name]
        cells = []
        for s in [held_out] + others:
            cells += [_fmt(s.get("auc")), _fmt(s.get("average_precision")), _fmt(s.get("log_loss"))]
        body.append(f"| {recipe} | {seed} | {train_s:.0f} | {predict_s:.0f} | {epoch} | {_fmt(val_auc)} | "
                    f"{_fmt(val_ll)} | " + " | ".join(cells)
                    + f" | {_fmt(held_out.get('face_auc'))} |")
    print("\n".join(body))
    if args.write_docs:
        write_section(args.write_docs, SECTION, body)
    return 0


def validation_of(checkpoint: Path) -> tuple[int, float | None, float | None]:
    """The epoch of a ``_best`` checkpoint and its validation AUC and balanced log loss (what picked it)."""
    data = read_checkpoint(checkpoint)
    metrics = data.get("metrics") or {}
    return int(data["epoch"]), metrics.get("auc"), metrics.get("balanced_log_loss")


def _fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
