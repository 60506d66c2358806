"""Stage 5: ``folds.csv`` (video,file,label,original,frame,fold), one row per crop on disk.

Folds follow the data parts: fold = part number mod ``--n-splits`` (default 16), where an original's
part decides the fold of the original and all its fakes, so no original/fake pair is ever split
(checked before writing). With a single part the fold comes from a hash of the original's id instead.
Fakes whose original is missing are left out, each with one warning (and a line in the log).

    python -m preprocessing.generate_folds DATA_ROOT [--n-splits 16]
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from preprocessing.layout import DataLayout, LayoutProblem, VideoEntry, parse_crop_name, write_text_atomic
from preprocessing.runner import ItemError, Stage, WorkItem, run_cli, run_stage, stage_parser

STAGE_NAME = "generate_folds"
DEFAULT_N_SPLITS = 16
COLUMNS = ("video", "file", "label", "original", "frame", "fold")


def _part_number(part: str, position: int) -> int:
    match = re.search(r"(\d+)$", part)
    return int(match.group(1)) if match else position


def assign_folds(entries: list[VideoEntry], parts: list[str], n_splits: int) -> dict[str, int]:
    """Fold of every original id."""
    originals = [e for e in entries if not e.is_fake]
    if len(parts) > 1:
        numbers = {part: _part_number(part, i) for i, part in enumerate(parts)}
        return {e.video_id: numbers[e.part] % n_splits for e in originals}
    return {e.video_id: int(hashlib.sha1(e.video_id.encode("utf-8")).hexdigest()[:12], 16) % n_splits
            for e in originals}


def folds_rows(layout: DataLayout, entries: list[VideoEntry], n_splits: int = DEFAULT_N_SPLITS) -> list[tuple]:
    """The rows of folds.csv for the crops on disk (fakes without their original are left out)."""
    folds = assign_folds(entries, [p.name for p in layout.parts()], n_splits)
    rows = []
    for entry in entries:
        original = entry.source_id
        if original not in folds:
            continue
        label = 1 if entry.is_fake else 0
        for frame, face in layout.crop_files(entry.video_id):
            rows.append((entry.video_id, f"{frame}_{face}.png", label, original, frame, folds[original]))
    rows.sort(key=lambda r: (r[0], parse_crop_name(r[1])))
    pair_folds: dict[str, set[int]] = {}
    for row in rows:
        pair_folds.setdefault(row[3], set()).add(row[5])
    split = {original: sorted(f) for original, f in pair_folds.items() if len(f) > 1}
    if split:
        raise AssertionError(f"originals split across folds (a bug, please report it): {split}")
    return rows


def write_folds_csv(target: Path, rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    write_text_atomic(target, buffer.getvalue())


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    return [WorkItem("folds", tuple(entries))], problems


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> list[Path]:
    rows = folds_rows(layout, list(item.videos), int(options.get("n_splits", DEFAULT_N_SPLITS)))
    if not rows:
        # an old folds.csv would list crops that are gone: training must not find one
        layout.folds_csv.unlink(missing_ok=True)
        raise ItemError(f"no crops under {layout.crops_root} for any video listed in the parts' metadata.json, so "
                        f"no {layout.folds_csv}: run the stages before it (./preprocess_data.sh {layout.root})")
    write_folds_csv(layout.folds_csv, rows)
    return [layout.folds_csv]


def _flat_dirs(layout: DataLayout) -> list[Path]:
    return [layout.root]


# always rerun: it is cheap and must reflect the crops on disk now
STAGE = Stage(STAGE_NAME, _list_items, _process, flat_dirs=_flat_dirs, always_run=True, output_dirs=_flat_dirs)


def generate_folds(data_root, progress: bool = True, n_splits: int = DEFAULT_N_SPLITS):
    """Stage 5 over DATA_ROOT (never sharded: run it once after every shard of stages 1-4)."""
    if int(n_splits) < 1:
        raise ValueError(f"--n-splits {n_splits}: must be >= 1")
    return run_stage(STAGE, data_root, {"n_splits": int(n_splits)}, workers=1, shard=None, progress=progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0], sharded=False)
    parser.add_argument("--n-splits", type=int, default=DEFAULT_N_SPLITS,
                        help="number of folds (default 16; folds follow the data parts)")
    args = parser.parse_args(argv)
    return run_cli(lambda: generate_folds(args.data_root, not args.no_progress, args.n_splits))


if __name__ == "__main__":
    raise SystemExit(main())
