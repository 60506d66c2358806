"""Pooled (the winner's rule) against per-person aggregation, on the same predictions.

    python bench/aggregation.py --set NAME WEIGHTS_DIR_OR_CKPT DIR [DIR ...] [--set ...]
        [--work output/bench_aggregation] [--frames-per-video 32 8] [--two-person-scenes 4]
        [--write-docs docs/benchmarks.md]

Each ``--set`` names a model (a weights folder or checkpoint) and the labelled folders it scores;
``two_person`` as a folder is generated here (``--two-person-scenes`` scenes of the sample generator:
per scene one two-person real and two fakes where one of the two people is face-swapped). Every
prediction carries both rules' answers (``pooled_probability``, ``per_person_probability`` in
``OUT.persons.json``), so one ``predict_folder.py`` run per set and frame count gives both columns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, publish  # noqa: E402

SECTION = "## Pooled against per-person aggregation (bench/aggregation.py)"


def _labels(folders: list[Path]) -> dict[str, int]:
    """Row name (``FOLDER/FILE`` with several folders, as predict_folder names them) -> label, from the
    dataset readers' labels of each folder."""
    from datasets.readers import folder_labels
    from prediction.evaluation import folder_keys

    keys = folder_keys(folders) if len(folders) > 1 else None
    labels = {}
    for folder in folders:
        found = folder_labels(folder)
        if found is None:
            raise SystemExit(f"{folder}: no dataset reader knows its labels (e.g. no metadata.json in it)")
        for name, entry in found.entries.items():
            labels[f"{keys[folder]}/{name}" if keys else name] = int(entry.is_fake)
    return labels


def score_set(name: str, model: str, folders: list[Path], frames: int, work: Path) -> dict:
    from core.metrics import auc, log_loss

    output = work / f"{name}_{frames}.csv"
    models = ["--weights-dir", model] if Path(model).is_dir() else ["--models", model]
    start = time.perf_counter()
    subprocess.run([sys.executable, "predict_folder.py", "--test-dir", *map(str, folders), *models, "--output",
                    str(output), "--frames-per-video", str(frames), "--no-progress"], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    persons = json.loads(output.with_name(output.stem + ".persons.json").read_text())
    labels = _labels(folders)
    names = sorted(n for n in persons if n in labels and persons[n]["fallback_reason"] is None)
    y = [labels[n] for n in names]
    row = {"set": name, "frames": frames, "videos": len(names), "fake": sum(y), "seconds": round(seconds, 1),
           "multi_person_videos": sum(len(persons[n]["persons"]) > 1 for n in names),
           "dropped_faces": sum(len(persons[n]["dropped_tracks"]["frames"]) for n in names
                                if persons[n]["dropped_tracks"])}
    for rule, key in (("pooled", "pooled_probability"), ("per_person", "per_person_probability")):
        p = [persons[n][key] for n in names]
        row[f"{rule}_auc"], row[f"{rule}_log_loss"] = auc(y, p), log_loss(y, p)
        row[f"{rule}_fake_mean"] = sum(pi for pi, yi in zip(p, y) if yi) / max(sum(y), 1)
        row[f"{rule}_real_mean"] = sum(pi for pi, yi in zip(p, y) if not yi) / max(len(y) - sum(y), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", nargs="+", action="append", required=True, metavar="NAME MODEL DIR",
                        help="a name, a weights folder or checkpoint, and its labelled folders ('two_person': generated)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "output" / "bench_aggregation")
    parser.add_argument("--frames-per-video", type=int, nargs="+", default=[32, 8])
    parser.add_argument("--two-person-scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="of the generated two-person videos")
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.set:
        if len(spec) < 3:
            parser.error(f"--set {' '.join(spec)}: give NAME MODEL DIR [DIR ...]")
        name, model, *dirs = spec
        folders = []
        for d in dirs:
            if d == "two_person":
                from sample_data.make_sample_dataset import TWO_PERSON_NAME, generate_two_person_videos

                root = args.work / "generated"
                if not (root / TWO_PERSON_NAME / "metadata.json").is_file():
                    generate_two_person_videos(root, args.two_person_scenes, seed=args.seed)
                folders.append(root / TWO_PERSON_NAME)
            else:
                folders.append(Path(d))
        for frames in args.frames_per_video:
            row = score_set(name, model, folders, frames, args.work)
            rows.append(row)
            print(json.dumps(row))
    header = ("| set | frames | videos (fake) | 2+ persons | dropped faces | pooled AUC | pooled LL | per-person AUC "
              "| per-person LL | mean score of fakes: pooled / per-person | of reals: pooled / per-person |")
    body = [f"Machine: {machine_description()}. Command: `python bench/aggregation.py "
            + " ".join(f"--set {' '.join(s)}" for s in args.set)
            + f" --frames-per-video {' '.join(map(str, args.frames_per_video))} --two-person-scenes "
              f"{args.two_person_scenes} --seed {args.seed}`.", "", header, "|" + "---|" * 11]
    for r in rows:
        body.append(f"| {r['set']} | {r['frames']} | {r['videos']} ({r['fake']}) | {r['multi_person_videos']} | "
                    f"{r['dropped_faces']} | {r['pooled_auc']:.3f} | {r['pooled_log_loss']:.3f} | "
                    f"{r['per_person_auc']:.3f} | {r['per_person_log_loss']:.3f} | {r['pooled_fake_mean']:.3f} / "
                    f"{r['per_person_fake_mean']:.3f} | {r['pooled_real_mean']:.3f} / {r['per_person_real_mean']:.3f} |")
    publish(SECTION, body, args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
