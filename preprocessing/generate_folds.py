"""Stage 5: ``folds.csv`` (video,file,label,original,frame,fold), one row per crop on disk.

A video in a dataset's official split (``VideoEntry.split``, from its reader: FF++'s pair lists,
Celeb-DF's test list) takes that split's fold: ``val`` -> 0, ``test`` -> 1, ``train`` -> 2, so that
``FOLD=0 TEST_FOLD=1 ./train.sh`` trains on train, validates on val and keeps test out.

Every other video's fold is its identity group's, as the dataset's reader gives it
(``VideoEntry.identity_group``; DFDC's: an original, its fakes, and every original whose id appears in
the name of one of those fakes, ``datasets.dfdc.with_identity_groups``), so that no face is in training
and validation at once. With several DFDC data parts a group's fold is its lowest part number mod
``--n-splits`` (default 16, the DFDC recipe's). Otherwise (one part, any other dataset) the groups are
dealt out so that every fold gets some and the folds hold about as many videos each: largest group
first, each to the fold with the fewest videos so far, ties by a hash of the group's id (default 5
folds there). When some videos hold the official test split, the dealt folds skip its fold 1 (0, 2,
3, ...), so that fold 1 is exactly the official test set. Both are checked before writing: a group is
never split. Fakes whose original is missing are left out, each with one warning (and a line in the log).

    python -m preprocessing.generate_folds DATA_ROOT [--n-splits N]
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from core.files import remove_inside, stable_id_hash, write_text_atomic
from datasets.layout import FOLDS_COLUMNS, DataLayout, parse_crop_name, part_number
from datasets.readers import LayoutProblem, VideoEntry
from preprocessing.runner import ItemError, Stage, WorkItem, layout_of, run_cli, run_stage, stage_parser

STAGE_NAME = "generate_folds"
DEFAULT_N_SPLITS = 16  # several data parts (DFDC): fold = part number mod 16
SINGLE_PART_N_SPLITS = 5  # one part: identity groups dealt into 5 folds (20 % held out per fold)
COLUMNS = FOLDS_COLUMNS

log = logging.getLogger(__name__)


def default_n_splits(n_parts: int) -> int:
    return DEFAULT_N_SPLITS if n_parts > 1 else SINGLE_PART_N_SPLITS


# an official split's fold (FOLD=0 TEST_FOLD=1 train on train, validate on val, test on test)
SPLIT_FOLDS = {"val": 0, "test": 1, "train": 2}


def identity_groups(entries: list[VideoEntry]) -> dict[str, str]:
    """Original id -> the identity group its reader put it in (a group is named by its smallest original)."""
    return {e.video_id: e.identity_group for e in entries if not e.is_fake and e.identity_group is not None}


def dealt_fold_numbers(entries: list[VideoEntry], n_splits: int) -> list[int]:
    """The ``n_splits`` fold numbers identity groups are dealt into: 0 .. n-1, without the official test
    fold when some video holds that split."""
    if any(e.split == "test" for e in entries):
        return [f for f in range(n_splits + 1) if f != SPLIT_FOLDS["test"]]
    return list(range(n_splits))


def _dealt_groups(entries: list[VideoEntry], groups: list[str], n_splits: int) -> dict[str, int]:
    """Each group to the fold with the fewest videos so far, largest group first (index 0 .. n-1)."""
    videos = {g: 0 for g in groups}
    for entry in entries:
        if entry.identity_group in videos:
            videos[entry.identity_group] += 1
    load = [0] * n_splits
    group_fold = {}
    for group in sorted(groups, key=lambda g: (-videos[g], stable_id_hash(g), g)):
        fold = min(range(n_splits), key=lambda f: (load[f], f))
        group_fold[group] = fold
        load[fold] += videos[group]
    return group_fold


def _group_folds(entries: list[VideoEntry], parts: list[str], n_splits: int) -> dict[str, int]:
    """Fold index (0 .. n-1) of every identity group of these entries (none holds an official split; a
    fake whose original is not among them is in the group its reader gave it)."""
    members: dict[str, list[str]] = {}
    for original, group in identity_groups(entries).items():
        members.setdefault(group, []).append(original)
    originals = {e.video_id: e for e in entries if not e.is_fake}
    numbers = {part: part_number(part, i) for i, part in enumerate(parts)} if len(parts) > 1 else {}
    by_part = {g: ids for g, ids in members.items() if all(originals[o].part in numbers for o in ids)}
    group_fold = {g: min(numbers[originals[o].part] for o in ids) % n_splits for g, ids in by_part.items()}
    groups = {e.identity_group for e in entries if e.identity_group is not None} - set(by_part)
    group_fold.update(_dealt_groups(entries, sorted(groups), n_splits))
    return group_fold


def entry_folds(entries: list[VideoEntry], parts: list[str], n_splits: int) -> dict[str, int]:
    """Fold of every video that has one: its official split's, else its identity group's. A fake whose
    original is not a listed real video has none."""
    originals = {e.video_id for e in entries if not e.is_fake}
    usable = [e for e in entries if e.source_id in originals]
    numbers = dealt_fold_numbers(entries, n_splits)
    group_fold = _group_folds([e for e in usable if not e.split], parts, n_splits)
    return {e.video_id: SPLIT_FOLDS[e.split] if e.split else numbers[group_fold[e.identity_group]]
            for e in usable if e.split or e.identity_group in group_fold}


def assign_folds(entries: list[VideoEntry], parts: list[str], n_splits: int) -> dict[str, int]:
    """Fold of every original id (entry_folds of the real videos)."""
    folds = entry_folds(entries, parts, n_splits)
    return {e.video_id: folds[e.video_id] for e in entries if not e.is_fake and e.video_id in folds}


def _check_groups(rows: list[tuple], entries: list[VideoEntry], n_splits: int) -> None:
    """A group outside the official split is never split across folds (an AssertionError: a bug); empty
    dealt folds are logged."""
    group_of = {e.video_id: e.identity_group for e in entries if not e.split}
    group_folds: dict[str, set[int]] = {}
    for row in rows:
        if row[0] in group_of:
            group_folds.setdefault(group_of[row[0]], set()).add(row[5])
    split = {group: sorted(f) for group, f in group_folds.items() if len(f) > 1}
    if split:
        raise AssertionError(f"identity groups split across folds (a bug, please report it): {split}")
    if not group_of:
        return
    empty = sorted(set(dealt_fold_numbers(entries, n_splits)) - {row[5] for row in rows if row[0] in group_of})
    if empty:
        log.warning("folds %s of %d have no crop (%d identity groups with crops): train with another --fold or "
                    "make fewer folds (--n-splits)", empty, n_splits, len(group_folds))


def folds_rows(layout: DataLayout, entries: list[VideoEntry], n_splits: int | None = None) -> list[tuple]:
    """The rows of folds.csv for the crops on disk (fakes without their original are left out)."""
    parts = [p.name for p in layout.parts()]
    n_splits = default_n_splits(len(parts)) if n_splits is None else int(n_splits)
    folds = entry_folds(entries, parts, n_splits)
    rows = []
    for entry in entries:
        if entry.video_id not in folds:
            continue
        label = 1 if entry.is_fake else 0
        for frame, face in layout.crop_files(entry.video_id):
            rows.append((entry.video_id, f"{frame}_{face}.png", label, entry.source_id, frame, folds[entry.video_id]))
    rows.sort(key=lambda r: (r[0], parse_crop_name(r[1])))
    _check_groups(rows, entries, n_splits)
    return rows


def write_folds_csv(target: Path, rows: list[tuple], root: Path | None = None) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    write_text_atomic(target, buffer.getvalue(), root)


def _list_items(layout: DataLayout, options: dict) -> tuple[list[WorkItem], list[LayoutProblem]]:
    entries, problems = layout.scan()
    return [WorkItem("folds", tuple(entries))], problems


def _process(layout: DataLayout, item: WorkItem, state, options: dict) -> list[Path]:
    rows = folds_rows(layout, list(item.videos), options.get("n_splits"))
    if not rows:
        # an old folds.csv would list crops that are gone: training must not find one
        remove_inside(layout.root, layout.folds_csv)
        raise ItemError(f"no crops under {layout.crops_root} for any video of the datasets in {layout.root}, so "
                        f"no {layout.folds_csv}: run the stages before it (./preprocess_data.sh {layout.root})")
    write_folds_csv(layout.folds_csv, rows, root=layout.root)
    return [layout.folds_csv]


def _flat_dirs(layout: DataLayout) -> list[Path]:
    return [layout.root]


# always rerun: it is cheap and must reflect the crops on disk now
STAGE = Stage(STAGE_NAME, _list_items, _process, flat_dirs=_flat_dirs, always_run=True, output_dirs=_flat_dirs)


def check_n_splits(n_splits: int | None) -> int | None:
    if n_splits is not None and int(n_splits) < 1:
        raise ValueError(f"--n-splits {n_splits}: must be >= 1")
    return None if n_splits is None else int(n_splits)


N_SPLITS_HELP = (f"number of folds (default: {DEFAULT_N_SPLITS} with several data parts, where folds follow the "
                 f"parts; {SINGLE_PART_N_SPLITS} with one part)")


def generate_folds(data_root, progress: bool = True, n_splits: int | None = None):
    """Stage 5 over DATA_ROOT (never sharded: run it once after every shard of stages 1-4);
    ``n_splits`` None: the default for the number of parts."""
    n_splits = check_n_splits(n_splits)
    return run_stage(STAGE, data_root, {"n_splits": n_splits}, workers=1, shard=None, progress=progress)


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0], sharded=False)
    parser.add_argument("--n-splits", type=int, default=None, help=N_SPLITS_HELP)
    args = parser.parse_args(argv)
    return run_cli(lambda: generate_folds(layout_of(args), not args.no_progress, args.n_splits))


if __name__ == "__main__":
    raise SystemExit(main())
