"""All five preprocessing stages in order: boxes -> crops -> landmarks -> SSIM diffs -> folds.csv.

    python -m preprocessing.pipeline DATA_ROOT [--dataset NAME] [--compression c23] [--workers N]
        [--shard K/N] [--every 10] [--clips] ...
    ./preprocess_data.sh DATA_ROOT [same options]

DATA_ROOT holds one or more datasets as they ship (DFDC, FaceForensics++, DFD, Celeb-DF; docs/datasets.md):
every one found is read, or those named with ``--dataset``.

``--clips`` adds the face-track clips of the 3D models (``extract_clips``, with its ``--clip-*``
options) after the other stages: opt-in, because it decodes and encodes every frame of every face
track, which the 2D recipe does not need.

With ``--shard K/N`` stages 1-4 process this machine's share of the originals (stage 2-4 items are
keyed by the same original id as stage 1, so each shard only reads what it wrote itself) and
folds.csv is left for one unsharded run at the end, which skips the finished work and writes it.
"""

from __future__ import annotations

from collections.abc import Callable

from core.run_control import preprocessing_lock
from datasets.layout import DataLayout
from datasets.readers import DEFAULT_COMPRESSION, ReaderOptions
from faces.detectors import DEFAULT_DETECTOR
from preprocessing import detect_original_faces as stage1
from preprocessing import extract_clips as clips_stage
from preprocessing import extract_crops as stage2
from preprocessing import generate_diffs as stage4
from preprocessing import generate_folds as stage5
from preprocessing import generate_landmarks as stage3
from preprocessing.detect_original_faces import (
    DEFAULT_EVERY,
    DEFAULT_RECIPE,
    DEFAULT_SCALE,
    add_detection_arguments,
    detect_original_faces,
    stage_options,
)
from preprocessing.extract_clips import add_clip_arguments, clip_arguments, clip_stage_options, extract_clips
from preprocessing.extract_crops import extract_crops
from preprocessing.generate_diffs import generate_diffs
from preprocessing.generate_folds import generate_folds
from preprocessing.generate_landmarks import generate_landmarks
from preprocessing.runner import (
    StageSummary,
    check_workers,
    check_writable,
    parse_shard,
    print_summaries,
    run_cli,
    stage_parser,
)


def preprocess(data_root, workers: int | None = None, progress: bool = True, every: int = DEFAULT_EVERY,
               all_frames: bool = False, scale: float | str = DEFAULT_SCALE, device: str = "auto",
               n_splits: int | None = None, shard=None,
               on_stage_done: Callable[[StageSummary], None] | None = None,
               recipe: str = DEFAULT_RECIPE, detector: str = DEFAULT_DETECTOR,
               clips: dict | None = None, dataset: str | None = None,
               compression: str = DEFAULT_COMPRESSION) -> list[StageSummary]:
    """Run every stage over DATA_ROOT (its datasets: ``dataset``, comma-separated reader names, else every
    one found; FF++ / DFD read at ``compression``); returns one StageSummary per stage run
    (``on_stage_done`` is called with each as soon as its stage ends). ``clips``: run the clips stage last,
    with these options (``extract_clips.clip_stage_options``' arguments; ``{}``: the defaults); None: no clips.

    Raises LayoutError (before any work) when DATA_ROOT is unusable or an output folder of any stage
    cannot be written, ValueError on a bad option, LockError when another run holds DATA_ROOT.
    """
    layout = DataLayout(data_root, dataset, ReaderOptions(compression))
    layout.check()
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    stage_options(every, all_frames, scale, device, recipe, detector)  # bad options fail now, not after hours of work
    n_splits = stage5.check_n_splits(n_splits)
    if clips is not None:
        clip_stage_options(**clips)
    if workers is not None:
        check_workers(workers)
    stages_run = [stage1.STAGE, stage2.STAGE, stage3.STAGE, stage4.STAGE] + ([stage5.STAGE] if shard is None else [])
    stages_run += [clips_stage.STAGE] if clips is not None else []
    check_writable(layout, stages_run)  # stage 4's folder failing after stage 1's hours helps nobody
    common = dict(workers=workers, shard=shard, progress=progress)
    stages: list[Callable[[], StageSummary]] = [
        lambda: detect_original_faces(layout, every=every, all_frames=all_frames, scale=scale, device=device,
                                      recipe=recipe, detector=detector, **common),
        lambda: extract_crops(layout, every=every, **common),
        lambda: generate_landmarks(layout, device=device, detector=detector, **common),
        lambda: generate_diffs(layout, **common),
    ]
    if shard is None:
        stages.append(lambda: generate_folds(layout, progress=progress, n_splits=n_splits))
    if clips is not None:  # last: the 2D recipe's data is complete before the longest optional stage starts
        stages.append(lambda: extract_clips(layout, **common, **clips))
    summaries = []
    with preprocessing_lock(layout.root, shard):  # held from the first stage to the last, for the stages too
        for run in stages:
            summaries.append(run())
            if on_stage_done is not None:
                on_stage_done(summaries[-1])
    return summaries


def main(argv=None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    add_detection_arguments(parser)
    parser.add_argument("--n-splits", type=int, default=None, help=stage5.N_SPLITS_HELP)
    parser.add_argument("--clips", action="store_true",
                        help="also write the face-track clips of the 3D models (extract_clips, last)")
    add_clip_arguments(parser)
    args = parser.parse_args(argv)

    def run():
        preprocess(args.data_root, args.workers, not args.no_progress, args.every, args.all_frames, args.scale,
                   args.device, args.n_splits, args.shard, on_stage_done=lambda s: print_summaries([s]),
                   recipe=args.recipe, detector=args.detector,
                   clips=clip_arguments(args) if args.clips else None, dataset=args.dataset,
                   compression=args.compression)
        if args.shard is not None:
            print(f"shard {args.shard} finished; when every shard is done, run `./preprocess_data.sh "
                  f"{args.data_root}` once without --shard to write folds.csv")
        return []

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
