"""Robustness: a checkpoint's video AUC / AP / log loss (with bootstrap CIs) on corrupted copies of a
labelled test folder, per corruption and level (``prediction.corruptions``: H.264 CRF, downscale, blur,
noise, contrast, brightness; DeeperForensics' levels where it defines them).

    python bench/robustness.py --models CKPT [CKPT ...] (--test-dir FOLDER_WITH_METADATA_JSON | --data-root
        PREPROCESSED_ROOT [--fold 0])
        [--work output/bench_robustness] [--corruptions h264:40 blur:3 ...] [--predict-args "--tta"]
        [--write-docs docs/benchmarks.md]

The copies go to WORK/corrupted/<kind>_<level>/ (``corrupt_folder``: a copy whose source and corruption are
unchanged is not redone), the predictions to WORK/predictions/<kind>_<level>.csv through
``predict_folder.py``; a prediction whose inputs (the copies' fingerprints, the labels, the checkpoints,
the predictor's options) are unchanged is not redone either. The row ``none`` scores the test folder as it
is. Every number is the metrics JSON's (``prediction.evaluation``): its CI is the bootstrap over videos.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import fold_videos_folder, machine_description, publish, run_command  # noqa: E402
from core.files import write_json_atomic  # noqa: E402
from prediction.corruptions import CORRUPTIONS, FINGERPRINTS_NAME, corrupt_folder, folder_name  # noqa: E402

SECTION = "## Robustness to corruptions (bench/robustness.py)"
CLEAN = "none"
METRICS = (("auc", "AUC"), ("average_precision", "AP"), ("log_loss", "LL"))


@dataclass
class Row:
    """One corruption's scores and what they cost."""

    corruption: str
    description: str
    corrupt_s: float
    predict_s: float
    failed: int  # videos that could not be corrupted (they get no row)
    overall: dict


def _file_print(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def prediction_fingerprint(folder: Path, models: list[Path], predict_args: list[str]) -> str:
    """A hash of everything a folder's prediction depends on: its videos (their fingerprints, or their
    files for the clean folder), its labels, the checkpoints and the predictor's options."""
    prints = folder / FINGERPRINTS_NAME
    videos = json.loads(prints.read_text()) if prints.is_file() else \
        [_file_print(p) for p in sorted(folder.glob("*.mp4"))]
    labels = folder / "metadata.json"
    record = {"videos": videos, "labels": labels.read_text() if labels.is_file() else None,
              "models": [_file_print(m) for m in models], "predict_args": predict_args}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def predict(folder: Path, output: Path, models: list[Path], predict_args: list[str], log: Path) -> tuple[dict, float]:
    """The metrics JSON's overall scores of ``folder`` and the seconds it took (0 when reused)."""
    metrics_path = output.with_name(output.stem + ".metrics.json")
    print_path = output.with_name(output.stem + ".fingerprint")
    fingerprint = prediction_fingerprint(folder, models, predict_args)
    if metrics_path.is_file() and print_path.is_file() and print_path.read_text() == fingerprint:
        return json.loads(metrics_path.read_text())["evaluation"]["overall"], 0.0
    output.parent.mkdir(parents=True, exist_ok=True)
    seconds = run_command([sys.executable, "predict_folder.py", "--test-dir", str(folder), "--models",
                           *map(str, models), "--output", str(output), "--no-progress", *predict_args],
                          REPO_ROOT, None, log)
    print_path.write_text(fingerprint)
    return json.loads(metrics_path.read_text())["evaluation"]["overall"], seconds


def run_corruption(name: str, test_dir: Path, work: Path, models: list[Path], predict_args: list[str],
                   log: Path) -> Row:
    if name == CLEAN:
        folder, description, corrupt_s, failed = test_dir, "the test videos as they are", 0.0, 0
    else:
        corruption = CORRUPTIONS.get(name)
        folder = work / "corrupted" / folder_name(name)
        start = time.perf_counter()
        summary = corrupt_folder(test_dir, folder, corruption)
        corrupt_s = time.perf_counter() - start if summary.written else 0.0
        description, failed = corruption.description, len(summary.failed)
        for video, reason in summary.failed.items():
            print(f"  {name}: {video} left out: {reason}", flush=True)
    overall, predict_s = predict(folder, work / "predictions" / f"{folder_name(name)}.csv", models, predict_args, log)
    return Row(name, description, corrupt_s, predict_s, failed, overall)


def metric_cell(scores: dict, key: str) -> str:
    value = scores.get(key)
    if value is None or value != value:
        return "-"
    interval = (scores.get("ci") or {}).get(key)
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def table(rows: list[Row]) -> list[str]:
    clean_auc = next((r.overall.get("auc") for r in rows if r.corruption == CLEAN), None)
    lines = ["| corruption | what it does | videos | " + " | ".join(h for _, h in METRICS)
             + " | AUC - clean | corrupt s | predict s |",
             "|---" * (len(METRICS) + 6) + "|"]
    for row in rows:
        auc = row.overall.get("auc")
        delta = "-" if clean_auc is None or auc is None or row.corruption == CLEAN else f"{auc - clean_auc:+.3f}"
        videos = f"{row.overall.get('n_videos', '-')}" + (f" ({row.failed} failed)" if row.failed else "")
        lines.append(f"| {row.corruption} | {row.description} | {videos} | "
                     + " | ".join(metric_cell(row.overall, k) for k, _ in METRICS)
                     + f" | {delta} | {row.corrupt_s:.0f} | {row.predict_s:.0f} |")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="checkpoint file(s) to score")
    test = parser.add_mutually_exclusive_group(required=True)
    test.add_argument("--test-dir", type=Path, help="labelled test videos (metadata.json)")
    test.add_argument("--data-root", type=Path, help="a preprocessed one-part DATA_ROOT: its --fold's videos are "
                      "the test set (linked into WORK/fold<FOLD>_videos)")
    parser.add_argument("--fold", type=int, default=0, help="with --data-root: the test fold")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "output" / "bench_robustness",
                        help="corrupted copies and predictions go here")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS.names()),
                        choices=CORRUPTIONS.names(), metavar="KIND:LEVEL",
                        help=f"default: all ({', '.join(CORRUPTIONS.names())})")
    parser.add_argument("--predict-args", default="", help="extra predict_folder.py options, e.g. '--tta'")
    parser.add_argument("--write-docs", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.data_root is not None:
        args.test_dir = fold_videos_folder(args.data_root.resolve(), args.fold, work / f"fold{args.fold}_videos")
    if not (args.test_dir / "metadata.json").is_file():
        print(f"error: {args.test_dir}/metadata.json is missing; pass a folder of labelled test videos",
              file=sys.stderr)
        return 2
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        print(f"error: checkpoint(s) {missing} do not exist; pass the *_best file(s) train.sh wrote", file=sys.stderr)
        return 2
    log = work / "robustness.log"
    predict_args = shlex.split(args.predict_args)
    rows = []
    for name in [CLEAN] + args.corruptions:
        print(f"{name}: corrupting and predicting (log {log})", flush=True)
        rows.append(run_corruption(name, args.test_dir.resolve(), work, [m.resolve() for m in args.models],
                                   predict_args, log))
    write_json_atomic(work / "robustness.json", [row.__dict__ for row in rows])
    record = json.loads(next((work / "predictions").glob("*.metrics.json")).read_text())["evaluation"].get("bootstrap")
    body = [f"Command: `python bench/robustness.py --models {' '.join(m.name for m in args.models)} --test-dir "
            f"{args.test_dir.name} --corruptions {' '.join(args.corruptions)}"
            + (f" --predict-args '{args.predict_args}'" if args.predict_args else "") + "`.",
            f"Machine: {machine_description()}.", "",
            "Video AUC / AP / log loss [95% bootstrap CI] of the same checkpoint on corrupted copies of the test "
            "videos (each frame corrupted, re-encoded with H.264 at CRF 14 `ultrafast` unless the corruption is "
            "the re-encode; same frame count and frame rate). `corrupt s` / `predict s`: this run's wall time, 0 when "
            "the copies or predictions were reused."
            + (f" Bootstrap: {record['resamples']} resamples, seed {record['seed']}." if record else ""), ""]
    body += table(rows)
    publish(SECTION, body, args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
