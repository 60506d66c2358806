"""Folder predictor: every video in a folder -> submission CSV (``filename,label``), scored when labels exist.

    python predict_folder.py --test-dir DIR [DIR ...] --output OUT.csv [--preset default|winner] [--models CKPT ...]
        [--weights-dir weights] [prediction options, e.g. --frames-per-video 32 --strategy confident --tta]
        [--prefetch 2] [--encoder NAME] [--labels metadata.json | --no-labels] [--dataset NAME] [--split test]
        [--report DIR] [--report-videos 8]
        [--explain [N]] [--bootstrap 1000] [--bootstrap-seed 0] [--keep-going] [--no-progress]

Videos: the files directly in each folder ending in ``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ``.webm`` or
``.m4v`` (any case); files in other video formats (``.flv``, ``.wmv``, ``.mpg``...) are left out with a
warning that counts them. ``--preset NAME`` sets every prediction option (``default``: this project's
faster settings; ``winner``: the DFDC winning submission's predictor); prediction options given on the
command line override the preset's (``--help`` lists them). Without ``--models`` the checkpoints are
taken from ``--weights-dir`` itself, never its subfolders (default ``$WEIGHTS_DIR``, else ``weights/`` in
the repository: where ``train.sh`` writes): with ``--preset winner`` the winner's seven released files
(fetch them with ``./download_weights.sh``), otherwise what ``train.sh`` wrote there: the ``*_best`` file
of every run, or its ``*_last`` file when the run has no best one.
With labels (``--labels``, or what a dataset reader knows of the folder: a DFDC ``metadata.json`` or
``labels.csv`` in it, or its place in an FF++, DFD or Celeb-DF tree, ``datasets``; ``--no-labels`` reads
none) the evaluation protocol (``prediction.evaluation``: AUC, AP, EER, log losses, accuracy, face AUC;
per folder, per dataset and per manipulation method; every AUC, AP and log loss with its bootstrap 95%
confidence interval, ``--bootstrap`` resamples of the videos stratified by label, seeded with
``--bootstrap-seed``) and the fallback counts are printed and written to ``OUT.metrics.json``.
``--split test`` predicts only the videos of a dataset's official test split. Several folders (one per
dataset) are scored in one table, their rows named ``FOLDER/FILE``. ``OUT.persons.json``:
per video, per person (face track) its faces and score (``prediction.persons``). ``--report DIR`` writes
an HTML report (``prediction.report``: run context, scores, the highest log losses, a sortable table of
every video, one page per video with its persons' crops and scores); ``--explain [N]`` adds Grad-CAM
heatmaps of each person's N most fake faces (on the report's pages, else in ``OUT.explain/``).

In the CSV a video name that starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, carriage
return) is written behind a single quote (``'=x.mp4``), so that a spreadsheet shows it as text; every
other name is written as it is.

Exit codes: 0 done; 2 bad input, found before any video is read (missing or empty folder, a folder
where a file is needed or the reverse, no checkpoint, a checkpoint that does not fit or is refused as
unsafe, an unreadable labels file or a bad entry in it, an output that cannot be written, an unknown
preset or option value); 1 an error that is not a property of the input (a bug): the traceback is printed
and the CSV holds the rows done before it (``--keep-going``: every video gets a row, the failed ones 0.5,
and the exit code is still 1); 3 an output could not be written during the run (disk full, quota): the
predictions are in ``OUT.csv``, else in a recovery file in the temp or home folder, else printed on
stdout, and the message says which.

This module only reads the command line; the run is ``prediction.run`` (inputs: ``prediction.inputs``,
outputs: ``prediction.outputs``, the metrics file: ``prediction.summary``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import traceback
from pathlib import Path

from core.errors import InputError
from core.metrics import Bootstrap
from datasets.readers import READERS, SPLITS
from prediction.inputs import PredictionRequest
from prediction.options import PRESETS, PredictorOptions, option_choices
from prediction.outputs import OutputWriteError
from prediction.run import print_console, request_options, run

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_FAILED = 3


def _option_parser(spec: dataclasses.Field):
    """text -> value of one option; argparse turns a ValueError into a usage error naming the flag."""
    parse = spec.metadata["parse"] or type(spec.default)

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = spec.name  # argparse names the type in its error message
    return convert


def _none_text(meta) -> str:
    """What an option's None means on the command line: the first word of its metavar (``auto|N`` -> auto)."""
    return meta["metavar"].split("|")[0] if meta["metavar"] else "auto"


def add_option_arguments(group) -> None:
    """One flag per PredictorOptions field; a flag not given stays absent, so only explicit flags
    override the preset (``argparse.SUPPRESS``)."""
    for spec in dataclasses.fields(PredictorOptions):
        flag = spec.metadata["flag"] or "--" + spec.name.replace("_", "-")
        meta = spec.metadata
        if isinstance(spec.default, bool):
            group.add_argument(flag, dest=spec.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"{meta['help']} (default: {spec.default})")
        else:
            group.add_argument(flag, dest=spec.name, type=_option_parser(spec), choices=option_choices(spec),
                               metavar=meta["metavar"], default=argparse.SUPPRESS,
                               help=f"{meta['help']} (default: {_none_text(meta) if spec.default is None else spec.default})")


def option_overrides(args: argparse.Namespace) -> dict:
    """The prediction options given on the command line (the preset gives the others)."""
    return {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(PredictorOptions)
            if hasattr(args, spec.name)}


def options_from_args(args: argparse.Namespace) -> PredictorOptions:
    """The preset's options with the prediction flags given on the command line on top."""
    return request_options(request_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--test-dir", nargs="+", metavar="DIR",
                        help="folder(s) of videos (.mp4 .mov .mkv .avi .webm .m4v, any case; every one gets a "
                             "row); with several (one per dataset) the rows are named FOLDER/FILE and the scores "
                             "are broken down per folder")
    source.add_argument("--video", help="a single video file")
    models = parser.add_argument_group("models")
    models.add_argument("--models", nargs="+", metavar="CKPT", help="checkpoints (any mix of this project's "
                        "and the DFDC winner's); default: the preset's checkpoints in --weights-dir (winner: "
                        "its seven released files), else the *_best (else *_last) files there")
    from models.weights import default_weights_dir

    models.add_argument("--weights-dir", default=str(default_weights_dir()),
                        help="where train.sh wrote checkpoints ($WEIGHTS_DIR, else weights/ in the repository)")
    models.add_argument("--encoder", help="encoder of checkpoints that carry no config and no encoder in "
                        "their file name")
    pred = parser.add_argument_group("prediction", "every option defaults to the preset's value")
    pred.add_argument("--preset", default="default", choices=sorted(PRESETS.names()),
                      help="named set of prediction options (default: default; winner: the DFDC winning "
                           "submission's predictor and its seven checkpoints)")
    add_option_arguments(pred)
    pred.add_argument("--prefetch", type=int, default=2, help="videos decoded ahead in a reader thread")
    pred.add_argument("--keep-going", action="store_true",
                      help="on an error that is not a known input problem: log its traceback, give the video "
                           "0.5, go on (the exit code is still 1)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", required=True, help="submission CSV (filename,label; a name that starts like "
                     "a spreadsheet formula, = + - @, is written behind a ')")
    labels = out.add_mutually_exclusive_group()
    labels.add_argument("--labels", help="DFDC metadata.json or filename,label CSV; default: metadata.json "
                        "next to the videos (in each --test-dir), when present")
    labels.add_argument("--no-labels", action="store_true", help="read no labels (not even a metadata.json next "
                        "to the videos): predict only, no scores")
    out.add_argument("--dataset", type=dataset_names, metavar="NAME[,NAME]",
                     help=f"the dataset reader(s) that give each --test-dir folder its labels ({', '.join(READERS.names())}"
                          f"; default: the first that knows the folder: a DFDC metadata.json or labels.csv, a folder "
                          f"of an FF++, DFD or Celeb-DF tree)")
    out.add_argument("--split", choices=SPLITS, help="predict only the videos the dataset puts in this official split "
                     "(FF++'s pair lists, Celeb-DF's List_of_testing_videos.txt)")
    out.add_argument("--report", metavar="DIR", help="write an HTML report here")
    out.add_argument("--report-videos", type=int, default=8,
                     help="videos in the report's 'highest log loss' list (every video gets its own page)")
    out.add_argument("--explain", type=int, nargs="?", const=3, default=0, metavar="N",
                     help="Grad-CAM heatmaps of each person's N most fake faces (default N: 3): on the report's "
                          "video pages with --report, else in OUT.explain/")
    out.add_argument("--bootstrap", type=int, default=Bootstrap.resamples, metavar="N",
                     help="bootstrap resamples of the labelled videos (stratified by label) for the 95%% confidence "
                          "interval of every AUC, AP and log loss; 0: no intervals (default: %(default)s)")
    out.add_argument("--bootstrap-seed", type=int, default=Bootstrap.seed, metavar="SEED",
                     help="seed of the resamples: the same seed gives the same intervals (default: %(default)s)")
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def dataset_names(text: str) -> str:
    """``--dataset``: known reader names, comma-separated."""
    unknown = [name for name in text.split(",") if name.strip() not in READERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dataset {unknown[0]!r}; known: {', '.join(READERS.names())}")
    return text


def request_from_args(args: argparse.Namespace, argv_used: list[str] | None = None) -> PredictionRequest:
    return PredictionRequest(
        output=Path(args.output), test_dirs=tuple(args.test_dir) if args.test_dir else None, video=args.video,
        preset=args.preset, option_overrides=option_overrides(args),
        models=tuple(args.models) if args.models else None, weights_dir=args.weights_dir, encoder=args.encoder,
        labels=args.labels, no_labels=args.no_labels, dataset=args.dataset, split=args.split,
        report=args.report, report_videos=args.report_videos,
        explain=args.explain, prefetch=args.prefetch, keep_going=args.keep_going, progress=args.progress,
        bootstrap=Bootstrap(resamples=args.bootstrap, seed=args.bootstrap_seed),
        argv=tuple(sys.argv[1:] if argv_used is None else argv_used))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        result = run(request_from_args(args, sys.argv[1:] if argv is None else list(argv)), print_console())
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OutputWriteError as exc:
        print(f"error: {exc}; exit code {EXIT_WRITE_FAILED}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except Exception:
        traceback.print_exc()
        print(f"error: the run stopped on an error that is not a known input problem (traceback above); "
              f"exit code {EXIT_ERROR}. --keep-going predicts the other videos anyway", file=sys.stderr)
        return EXIT_ERROR
    if result.n_errors:
        print(f"{result.n_errors} video{' failed' if result.n_errors == 1 else 's failed'} with an error "
              f"(tracebacks above; their rows hold 0.5): exit code {EXIT_ERROR}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
