"""Learning curve: held-out video AUC / AP / log loss (bootstrap CIs) against the number of training videos.

    python bench/learning_curve.py [--ffpp ../shared/data/ffpp_train | --data-root PREPROCESSED_ROOT]
        [--work output/bench_learning_curve] [--sizes 20 40 62 82] [--seeds 111]
        [--config configs/ffpp_cpu.json] [--fold 0] [--val-fold 1] [--write-docs docs/benchmarks.md]

Fold ``--fold`` is the test set (never trained on, never picks a checkpoint), ``--val-fold`` picks the
``_best`` checkpoint; the rest are the training folds. A size below what the training folds hold trains on a
subset of whole identity groups drawn from the seed (``--set train_videos=N``); the size of the training
folds trains on all of them (the run ``bench/quality.py`` makes with real fakes, reused when WORK holds it:
WORK/weights/real_<seed>/test<fold> or WORK/weights/real_<seed>); a larger size trains on the validation fold
too (``--no-validation``: no checkpoint choice, the last epoch is scored; up to every fold but the test fold).
Each run goes through ``./train.sh --resume`` into WORK/weights/curve_<size>_<seed>/, so a rerun only scores
what is missing; predictions are reused while their checkpoint is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import PART, fold_videos_folder, machine_description, publish, recorded_time, run_command  # noqa: E402
from bench.robustness import METRICS, metric_cell, predict  # noqa: E402
from datasets.dfdc import METADATA_NAME  # noqa: E402
from training.datasets.classifier_dataset import read_folds  # noqa: E402
from training.tools.config import load_config  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"
SECTION = "## Learning curve (bench/learning_curve.py)"


@dataclass(frozen=True)
class CurvePoint:
    """One training size: what train.sh is asked for and which checkpoint is scored."""

    size: int
    train_args: str  # TRAIN_ARGS
    checkpoint: str  # "best" or "last"


def plan_points(data_root: Path, sizes: list[int], fold: int, val_fold: int) -> tuple[list[CurvePoint], int, int]:
    """The points of ``sizes``, and the videos of the training folds and of every fold but the test fold."""
    folds = read_folds(data_root)
    videos_by_fold = folds.groupby("fold")["video"].nunique()
    training = int(sum(n for f, n in videos_by_fold.items() if f not in (fold, val_fold)))
    all_but_test = int(sum(n for f, n in videos_by_fold.items() if f != fold))
    points = []
    for size in sizes:
        if size < training:
            points.append(CurvePoint(size, f"--set fakes=real --set train_videos={size}", "best"))
        elif size == training:
            points.append(CurvePoint(size, "--set fakes=real", "best"))
        elif size < all_but_test:
            points.append(CurvePoint(size, f"--set fakes=real --set train_videos={size} --no-validation", "last"))
        else:
            points.append(CurvePoint(size, "--set fakes=real --no-validation", "last"))
    return points, training, all_but_test


def reusable_run(work: Path, seed: int, fold: int, val_fold: int, config: str) -> Path | None:
    """bench/quality.py's run of this seed with real fakes, when it has the same folds and config: its
    weights folder (its checkpoint is the one this curve would train for the training folds' size)."""
    wanted = load_config(config, ["fakes=real"]).as_dict()
    for folder in (work / "weights" / f"real_{seed}" / f"test{fold}", work / "weights" / f"real_{seed}"):
        args = sorted(folder.glob("*_args.json")) if folder.is_dir() else []
        if not args or not sorted(folder.glob("*_best")):
            continue
        stored = json.loads(args[0].read_text())
        run, stored_config = stored.get("run", {}), stored.get("config", {})
        same = all(stored_config.get(k, v) == v for k, v in wanted.items())
        if same and run.get("fold") == val_fold and run.get("test_fold") == fold and run.get("seed") == seed:
            return folder
    return None


def train_point(point: CurvePoint, seed: int, data_root: Path, work: Path, args) -> tuple[Path, float | None, bool]:
    """The weights folder of one point and seed (trained now unless complete), its recorded training time
    (None: not recorded) and whether it is bench/quality.py's run."""
    if point.train_args == "--set fakes=real":
        reused = reusable_run(work, seed, args.fold, args.val_fold, args.config)
        if reused is not None:
            times = work / "train_seconds.json"
            recorded_by_run = json.loads(times.read_text()) if times.is_file() else {}
            recorded = recorded_by_run.get(f"real_{seed}/test{args.fold}", recorded_by_run.get(f"real_{seed}"))
            return reused, (float(recorded) if recorded is not None else None), True
        print(f"no bench/quality.py run of seed {seed} with validation fold {args.val_fold} and test fold {args.fold} "
              f"and this config in {work / 'weights'}: training it", flush=True)
    key = f"curve_{point.size}_{seed}"
    weights = work / "weights" / key
    env = {"WEIGHTS_DIR": str(weights), "LOG_DIR": str(work / "logs" / key), "FOLD": str(args.val_fold),
           "TEST_FOLD": str(args.fold), "TRAIN_ARGS": point.train_args}
    print(f"training {key} ({point.train_args})", flush=True)
    seconds = run_command(["./train.sh", "--resume", str(data_root), "0", args.config, str(seed)], REPO_ROOT,
                          env, work / "learning_curve.log")
    return weights, recorded_time(work / "train_seconds.json", key, seconds), False


def videos_used(weights: Path, fallback: int) -> tuple[int, int | None]:
    """(training videos, identity groups) as the run recorded them (runs made before the record: all)."""
    run = json.loads(sorted(weights.glob("*_args.json"))[0].read_text()).get("run", {})
    groups = run.get("train_identity_groups")
    return int(run.get("train_videos_used", fallback)), (len(groups) if groups else None)


def data_root_of(args, work: Path) -> Path | None:
    """The preprocessed DATA_ROOT: --data-root as it is, else WORK/data made from --ffpp (preprocessed now;
    a no-op when its stage markers are complete). None: no data."""
    if args.data_root is not None:
        return args.data_root.resolve()
    if not (args.ffpp / PART / METADATA_NAME).is_file():
        return None
    data_root = work / "data"
    data_root.mkdir(parents=True, exist_ok=True)
    if not (data_root / PART).exists():
        (data_root / PART).symlink_to((args.ffpp / PART).resolve())
    print(f"preprocessing {data_root}", flush=True)
    run_command(["./preprocess_data.sh", str(data_root), "--workers", str(os.cpu_count() or 1), "--no-progress"],
                REPO_ROOT, None, work / "learning_curve.log")
    return data_root


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ffpp", type=Path, default=SHARED / "ffpp_train")
    parser.add_argument("--data-root", type=Path, help="a preprocessed DATA_ROOT, used as it is (no preprocessing)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "output" / "bench_learning_curve",
                        help="bench/quality.py's --work to reuse its run for the training folds' size")
    parser.add_argument("--sizes", nargs="+", type=int, default=[20, 40, 62, 82])
    parser.add_argument("--seeds", nargs="+", type=int, default=[111])
    parser.add_argument("--config", default="configs/ffpp_cpu.json")
    parser.add_argument("--fold", type=int, default=0, help="test fold")
    parser.add_argument("--val-fold", type=int, default=1, help="validation fold (picks _best)")
    parser.add_argument("--predict-args", default="", help="extra predict_folder.py options")
    parser.add_argument("--write-docs", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.val_fold == args.fold:
        build_parser().error(f"--val-fold {args.val_fold} is the test fold; pick another one")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_root = data_root_of(args, work)
    if data_root is None:
        print(f"skipped: no FF++ videos at {args.ffpp} (pass --ffpp or --data-root)")
        return 0
    points, training, all_but_test = plan_points(data_root, sorted(set(args.sizes)), args.fold, args.val_fold)
    test_dir = fold_videos_folder(data_root, args.fold, work / f"fold{args.fold}_videos")
    rows = []
    for point in points:
        for seed in args.seeds:
            weights, train_s, reused = train_point(point, seed, data_root, work, args)
            checkpoint = sorted(weights.glob(f"*_{point.checkpoint}"))[0]
            print(f"predicting size {point.size} seed {seed} ({checkpoint.name})", flush=True)
            overall, _ = predict(test_dir, work / "predictions" / f"curve_{point.size}_{seed}.csv", [checkpoint],
                                 args.predict_args.split(), work / "learning_curve.log")
            used, groups = videos_used(weights, training if point.checkpoint == "best" else all_but_test)
            rows.append((point, seed, used, groups, checkpoint.name.rsplit("_", 1)[1], train_s, reused, overall))
    publish(SECTION, report(args, rows, training, all_but_test), args.write_docs)
    return 0


# what the section says before its numbers (written with them, so a rerun keeps it)
WHAT_IT_MEASURES = [
    "What it measures: test AUC / AP / log loss (95% bootstrap CIs) of the FF++ CPU recipe",
    "(`configs/ffpp_cpu.json`, real fakes) against the number of training videos, on one test fold (0) that no",
    "run trains on: 20 and 40 videos are subsets of the training folds 2-4, whole identity groups drawn from the",
    "seed (`--set train_videos=N`, [Training](training.md#fewer-training-videos-or-the-validation-fold-too-learning-curves)),",
    "each checkpoint picked on validation fold 1; 62 is all of folds 2-4 (the run `bench/quality.py` makes,",
    "reused when `--work` holds it); 82 trains on the validation fold too (`--no-validation`, every fold but the",
    "test fold) and scores the last epoch, since nothing is left to pick a checkpoint on. `used` is the number of",
    "videos a run trained on (at most the size asked: groups are not split).",
    "",
    "```bash",
    "python bench/learning_curve.py --work WORK --data-root WORK/data --sizes 20 40 62 82 --seeds 111 555 \\",
    "    --write-docs docs/benchmarks.md          # reuses WORK/data and WORK/weights/real_<seed>/test0 (or real_<seed>)",
    "python bench/learning_curve.py --sizes 20 40 62 82 --write-docs docs/benchmarks.md   # from ../shared/data/ffpp_train",
    "```",
    "",
    "Cost on 2 cores: about 10 min per training (the schedule is 12 x 60 steps whatever the size) and 1 min per",
    "prediction; the 62-video point costs nothing when bench/quality.py's run is there.",
    "",
]


def report(args, rows: list, training: int, all_but_test: int) -> list[str]:
    data = " --data-root WORK/data" if args.data_root else ""
    body = [*WHAT_IT_MEASURES, f"Command: `python bench/learning_curve.py --work WORK{data} --sizes "
            f"{' '.join(map(str, args.sizes))} --seeds "
            f"{' '.join(map(str, args.seeds))}` (config `{args.config}`, test fold {args.fold}, validation fold "
            f"{args.val_fold}; the training folds hold {training} videos, all folds but the test fold "
            f"{all_but_test}).", f"Machine: {machine_description()}.", "",
            "Video AUC / AP / log loss [95% bootstrap CI] on the test fold's videos. `asked`: the size asked for; "
            "`used`: the training videos of the run (whole identity groups drawn from the seed, so at most the "
            "size asked); `scored`: `best` (picked on the validation fold) or `last` (the validation fold was "
            "trained on, nothing picks). `train s`: the wall time recorded when the run trained"
            " (`quality` = bench/quality.py's run, reused).", "",
            "| asked | used | groups | seed | scored | " + " | ".join(h for _, h in METRICS) + " | train s |",
            "|---" * (len(METRICS) + 6) + "|"]
    for point, seed, used, groups, scored, train_s, reused, overall in rows:
        seconds = ("-" if train_s is None else f"{train_s:.0f}") + (" (quality)" if reused else "")
        body.append(f"| {point.size} | {used} | {groups if groups is not None else 'all'} | {seed} | {scored} | "
                    + " | ".join(metric_cell(overall, k) for k, _ in METRICS) + f" | {seconds} |")
    return body


if __name__ == "__main__":
    sys.exit(main())
