"""Folder predictor: every video in a folder -> submission CSV (``filename,label``), scored when labels exist.

    python predict_folder.py --test-dir DIR [DIR ...] --output OUT.csv [--preset default|winner] [--models CKPT ...]
        [--weights-dir weights] [prediction options, e.g. --frames-per-video 32 --strategy confident --tta]
        [--prefetch 2] [--encoder NAME] [--labels metadata.json | --no-labels] [--dataset NAME] [--split test]
        [--report DIR] [--report-videos 8]
        [--explain [N]] [--keep-going] [--no-progress]

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
per folder, per dataset and per manipulation method) and the fallback counts are printed and written to
``OUT.metrics.json``. ``--split test`` predicts only the videos of a dataset's official test split. Several
folders (one per dataset) are scored in one table, their rows named ``FOLDER/FILE``. ``OUT.persons.json``:
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
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import logging
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.files import path_problem, write_json_atomic, write_text_atomic
from datasets.dfdc import METADATA_NAME, labels_file_entries
from datasets.readers import READERS, SPLITS, FolderLabels, folder_labels
from prediction.evaluation import folder_keys
from prediction.options import PRESETS, PredictorOptions, get_preset, resolve_options

EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_FAILED = 3

log = logging.getLogger("predict_folder")


class OutputWriteError(Exception):
    """An output could not be written (disk full, quota, a file system gone read-only); the message says
    where the predictions are. Exit code 3."""


# ---- inputs ---------------------------------------------------------------------------------------------


def find_checkpoints(weights_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints ``train.sh`` wrote in ``weights_dir`` itself (never in its subfolders: a backup
    copy in ``weights/old/`` must not join the ensemble): per run its ``*_best*`` file, or its ``*_last*``
    file when it has none; sorted by path."""
    from models.checkpoints import parse_checkpoint_name

    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    runs: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(weights_dir.iterdir()):
        parsed = parse_checkpoint_name(path.name)
        if parsed is None or parsed.which not in ("best", "last") or not path.is_file():
            continue
        runs.setdefault(parsed.run, {"best": [], "last": []})[parsed.which].append(path)
    chosen: list[Path] = []
    for kinds in runs.values():
        chosen.extend(kinds["best"] or kinds["last"])
    return sorted(chosen)


def subfolder_checkpoints(weights_dir: str | os.PathLike) -> list[Path]:
    """The ``*_best``/``*_last`` files in the subfolders of ``weights_dir`` (not used; named in messages)."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(p for sub in weights_dir.iterdir() if sub.is_dir() for p in find_checkpoints(sub))


def preset_checkpoints(preset: str, weights_dir: str | os.PathLike) -> list[Path] | None:
    """The checkpoints a preset names, in ``weights_dir``; None when the preset names none.

    Raises InputError naming every missing file and the command that fetches them."""
    names = get_preset(preset).checkpoint_names
    if not names:
        return None
    paths = [Path(weights_dir) / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"--preset {preset} uses {len(names)} released checkpoints and {len(missing)} are missing "
                         f"from {weights_dir}: {', '.join(p.name for p in missing)}; fetch them with "
                         f"./download_weights.sh (or pass --weights-dir DIR, or --models CKPT ...)")
    return paths


def list_input_videos(test_dirs: list[str] | None, video: str | None) -> list[Path]:
    """The videos to predict; warns (stderr) about files in a format left out on purpose, with the count."""
    if video is not None:
        path = Path(video)
        problem = path_problem(path, want="file")
        if problem:
            fix = f"use --test-dir {path} for a folder of videos" if problem == "is a folder" else "pass a video file"
            raise InputError(f"--video {path} {problem}; {fix}")
        return [path]
    from prediction.predictor import VIDEO_SUFFIXES, list_videos, unread_videos

    videos = []
    for test_dir in test_dirs:
        folder = Path(test_dir)
        problem = path_problem(folder, want="folder")
        if problem:
            fix = f"use --video {folder} for one video" if problem == "is a file" else "pass the folder of videos"
            raise InputError(f"--test-dir {folder} {problem}; {fix}")
        found = list_videos(folder)
        skipped = unread_videos(folder)
        if skipped:
            kinds = Counter(p.suffix.lower() for p in skipped)
            print(f"warning: {folder}: {len(skipped)} file(s) skipped, in video formats this predictor does not read "
                  f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}; e.g. {skipped[0].name}); they get "
                  f"no row. Convert them, e.g. ffmpeg -i {skipped[0].name} {skipped[0].stem}.mp4", file=sys.stderr)
        if not found:
            raise InputError(f"--test-dir {folder} holds no video file ({' '.join(VIDEO_SUFFIXES)}, any case); "
                             f"pass the folder of the test videos")
        videos += found
    return videos


def label_coverage(labels: dict[str, int], videos: list[Path]) -> tuple[int, list[str]]:
    """(how many of ``videos`` have a label, the label names that match no video)."""
    names = {v.name for v in videos}
    return sum(v.name in labels for v in videos), sorted(set(labels) - names)


# ---- outputs --------------------------------------------------------------------------------------------


def write_problem(path: str | os.PathLike, want: str = "file") -> str | None:
    """Why nothing can be written at ``path`` (a file, or a folder to create files in), checked before
    any work: the wrong kind of thing is already there ("is a folder"), a file stands where a folder is
    needed, or the nearest existing folder refuses a new file (permissions, read-only file system).
    None when fine."""
    path = Path(path).absolute()
    if path.exists() and (path.is_dir() if want == "file" else not path.is_dir()):
        return "is a folder" if want == "file" else "is a file"
    folder = path.parent if want == "file" else path
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:  # the real test: root ignores permission bits, and a read-only mount refuses everyone
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".tmp.write-check."):
            pass
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror or exc})"
    return None


# a cell starting with one of these is a formula to a spreadsheet (=, +, -, @; tab and carriage return
# are read as one too): such a name is written behind a single quote, which spreadsheets show as text
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text``, or ``'text`` when a spreadsheet would run it as a formula; other names are left as they
    are, so that the competition's scorer matches them."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def submission_text(predictions) -> str:
    """``filename,label`` for every prediction, sorted by file name (formula-like names quoted)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filename", "label"])
    for pred in sorted(predictions, key=lambda p: p.name):
        writer.writerow([spreadsheet_safe(pred.name), repr(float(pred.probability))])
    return buffer.getvalue()


def write_submission(path: str | os.PathLike, predictions) -> None:
    write_text_atomic(path, submission_text(predictions))


def recovery_paths(output: Path) -> list[Path]:
    """Where the rows go when ``output`` cannot be written (a full disk): the system's temp folder, then
    the home folder; both are often on another disk."""
    name = f"{output.stem}.recovered-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
    return [Path(tempfile.gettempdir()) / name, Path.home() / name]


def save_submission(output: Path, predictions) -> tuple[Path | None, list[str]]:
    """Write the CSV to ``output``, else to the first recovery file that takes it.

    Returns (where the rows are, or None when no place took them; why each place before it failed)."""
    failures: list[str] = []
    for target in [output, *recovery_paths(output)]:
        try:
            write_submission(target, predictions)
        except OSError as exc:
            failures.append(f"{target}: {exc.strerror or exc}")
            continue
        return target, failures
    return None, failures


def metrics_path_for(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".metrics.json")


def persons_path_for(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".persons.json")


def explain_path_for(output: str | os.PathLike) -> Path:
    """Where ``--explain`` writes heatmaps without ``--report`` (with it: in the report's video folders)."""
    output = Path(output)
    return output.with_name(output.stem + ".explain")


def code_version() -> str:
    """``git describe --always --dirty`` of the code's checkout, or why there is none."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown (git: {exc})"
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def run_context(predictor, argv: list[str]) -> dict:
    """When and how a run was made: date, command line, code version, the checkpoints (epoch, validation)."""
    import datetime
    import shlex

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "predict_folder.py", *argv]),
            "code_version": code_version(),
            "checkpoints": [{"path": str(m.path), "encoder": m.encoder, "input_size": m.input_size,
                             "epoch": m.epoch, "validation_score": m.validation_score} for m in predictor.models]}


def summarize(predictions, labels: dict[str, int] | None, folder_of: dict[str, str] | None = None,
              entries: dict | None = None) -> dict:
    """Scores on the labelled videos (as the competition scored), the evaluation protocol's breakdowns
    (``evaluation``: overall, per folder, per dataset, per manipulation method) and the fallback counts.
    ``folder_of`` and ``entries`` (the dataset readers' entries: method, dataset) are keyed by the
    prediction's name."""
    from prediction.evaluation import ScoredVideo, evaluate

    kinds = Counter(p.fallback_kind for p in predictions if p.fell_back)
    summary: dict = {
        "n_videos": len(predictions),
        "fallbacks": {"total": sum(kinds.values()), **{k: kinds.get(k, 0) for k in ("unreadable", "no_face", "error")}},
        "fallback_videos": {p.name: p.fallback_reason for p in predictions if p.fell_back},
        "partly_decoded_videos": {p.name: p.decode_warning for p in predictions if p.decode_warning},
    }
    if labels:
        labelled = [p for p in predictions if p.name in labels]
        folder_of, entries = folder_of or {}, entries or {}
        evaluation = evaluate(
            ScoredVideo(p.name, folder_of.get(p.name, p.path.parent.name), labels[p.name], p.probability,
                        p.face_scores.mean(axis=0) if p.face_scores.size else np.zeros(0),
                        getattr(entries.get(p.name), "method", None) if labels[p.name] else None,
                        getattr(entries.get(p.name), "dataset", None))
            for p in labelled)
        scores = dict(evaluation["overall"])  # the top-level scores are the overall row, computed once
        scores["n_labelled"] = scores.pop("n_videos")
        summary.update(scores)
        summary["n_unlabelled"] = len(predictions) - len(labelled)
        summary["evaluation"] = evaluation
    return summary


def settings_record(preset: str, predictor, labels_path: Path | None) -> dict:
    """How the results were made: the preset, every resolved option (device and precision as used)."""
    return {"preset": preset, **predictor.options.as_dict(), "device": predictor.device,
            "precision": str(predictor.dtype).replace("torch.", ""),
            "labels": str(labels_path) if labels_path is not None else None}


def _json_safe(value):
    """NaN (e.g. AUC with one class) as null, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---- CLI ------------------------------------------------------------------------------------------------


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
            group.add_argument(flag, dest=spec.name, type=_option_parser(spec), choices=meta["choices"],
                               metavar=meta["metavar"], default=argparse.SUPPRESS,
                               help=f"{meta['help']} (default: {_none_text(meta) if spec.default is None else spec.default})")


def options_from_args(args: argparse.Namespace) -> PredictorOptions:
    """The preset's options with the prediction flags given on the command line on top."""
    overrides = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(PredictorOptions)
                 if hasattr(args, spec.name)}
    try:
        return resolve_options(args.preset, **overrides)
    except ValueError as exc:
        raise InputError(str(exc)) from exc


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
    pred.add_argument("--preset", default="default", choices=sorted(PRESETS),
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
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def dataset_names(text: str) -> str:
    """``--dataset``: known reader names, comma-separated."""
    unknown = [name for name in text.split(",") if name.strip() not in READERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown dataset {unknown[0]!r}; known: {', '.join(READERS.names())}")
    return text


def check_outputs(output: Path, report: str | None, explain: int = 0) -> None:
    """Every place this run will write, checked before any work (else a whole prediction could be lost)."""
    targets = [(f"--output {output}", output, "file"),
               (f"the metrics file of --output, {metrics_path_for(output)}", metrics_path_for(output), "file"),
               (f"the persons file of --output, {persons_path_for(output)}", persons_path_for(output), "file")]
    if report:
        targets.append((f"--report {report}", Path(report), "folder"))
    if explain and not report:
        targets.append((f"the heatmap folder of --explain, {explain_path_for(output)}", explain_path_for(output),
                        "folder"))
    for what, path, want in targets:
        problem = write_problem(path, want)
        if problem:
            sep = " " if problem.startswith("is ") else ": "
            raise InputError(f"{what}{sep}{problem}; choose a writable {'file name' if want == 'file' else 'folder'}")


def video_folder_keys(args: argparse.Namespace, videos: list[Path]) -> dict[Path, str]:
    folders = [Path(d) for d in args.test_dir] if args.test_dir else [videos[0].parent]
    keys = folder_keys(folders)
    by_resolved = {f.resolve(): k for f, k in keys.items()}
    return {v: by_resolved[v.parent.resolve()] for v in videos}


def labels_of(found: FolderLabels) -> dict[str, int]:
    """``file name -> 1 (FAKE) / 0 (REAL)`` of a folder's labelled videos."""
    return {name: int(entry.is_fake) for name, entry in found.entries.items()}


def load_labels(args: argparse.Namespace, videos: list[Path]):
    """(labels keyed by row name or None, where the labels come from, {video: row name} where the row name
    is not the file name, {row name: the dataset reader's entry}). One folder (or ``--video``): ``--labels``
    or what the dataset readers know of the folder (``--dataset``: the named one; DFDC: its
    ``metadata.json`` or ``labels.csv``; FF++, DFD, Celeb-DF: the folder's place in the dataset's tree).
    Several folders: what the readers know of each, rows named FOLDER/FILE. ``--no-labels``: none read."""
    several = bool(args.test_dir) and len(args.test_dir) > 1
    if not several:
        if args.no_labels:
            return None, None, {}, {}
        found = labels_file_entries(args.labels) if args.labels else folder_labels(videos[0].parent, args.dataset)
        if found is None:
            return None, videos[0].parent / METADATA_NAME, {}, {}
        labels = checked_labels(labels_of(found), videos, found.source, args.test_dir[0] if args.test_dir else args.video)
        return labels, found.source, {}, dict(found.entries)
    if args.labels:
        raise InputError("--labels takes the labels of one folder; with several --test-dir folders each one's "
                         f"{METADATA_NAME} is read (put one in each folder, or score the folders one at a time)")
    keys = video_folder_keys(args, videos)
    display = {v: f"{keys[v]}/{v.name}" for v in videos}
    if args.no_labels:
        return None, None, display, {}
    labels: dict[str, int] = {}
    entries = {}
    for test_dir in args.test_dir:
        folder = Path(test_dir)
        found = folder_labels(folder, args.dataset)
        if found is None:
            print(f"labels: no dataset reader knows the labels of {folder} (no {METADATA_NAME} in it, not a folder "
                  f"of a dataset's tree); its videos are predicted, not scored", file=sys.stderr)
            continue
        mine = [v for v in videos if v.parent.resolve() == folder.resolve()]
        checked = checked_labels(labels_of(found), mine, found.source, test_dir)
        if checked:
            key = keys[mine[0]]
            labels.update({f"{key}/{name}": y for name, y in checked.items()})
            entries.update({f"{key}/{name}": entry for name, entry in found.entries.items()})
    return (labels or None), Path(args.test_dir[0]) / METADATA_NAME, display, entries


def videos_in_split(split: str, videos: list[Path], display: dict, entries: dict) -> list[Path]:
    """The videos whose dataset puts them in the official ``split`` (``--split``)."""
    if not entries:
        raise InputError(f"--split {split} keeps the videos a dataset's reader puts in its official {split} split, "
                         f"and no reader knows these videos' labels; pass the folders of a dataset's tree (e.g. "
                         f"ROOT/Celeb-real), or leave --split out")
    kept = [v for v in videos if getattr(entries.get(display.get(v, v.name)), "split", None) == split]
    if not kept:
        raise InputError(f"--split {split}: none of the {len(videos)} videos is in the official {split} split of "
                         f"its dataset; pass another --split or leave it out")
    return kept


def checked_labels(labels: dict[str, int], videos: list[Path], labels_path: Path, where) -> dict[str, int] | None:
    """The labels, after warning when they name none (None) or only some of the videos."""
    n_labelled, unmatched = label_coverage(labels, videos)
    if n_labelled == 0:
        print(f"warning: labels file {labels_path} names none of the {len(videos)} video(s) in {where} "
              f"(it names e.g. {', '.join(sorted(labels)[:3])}); no score is computed. Pass the labels of "
              f"these videos with --labels", file=sys.stderr)
        return None
    if n_labelled < len(videos) or unmatched:
        print(f"labels: {n_labelled} of {len(videos)} videos have a label in {labels_path}; "
              f"{len(unmatched)} labels name no video here", file=sys.stderr)
    return labels


def choose_checkpoints(args: argparse.Namespace) -> list[Path]:
    """``--models``, else the preset's files, else what ``train.sh`` wrote in ``--weights-dir`` itself."""
    if args.models:
        checkpoints = [Path(p) for p in args.models]
    else:
        checkpoints = preset_checkpoints(args.preset, args.weights_dir)
        if checkpoints is None:
            checkpoints = find_checkpoints(args.weights_dir)
            nested = subfolder_checkpoints(args.weights_dir)
            if nested:
                print(f"note: {len(nested)} checkpoint(s) in subfolders of {args.weights_dir} are not used "
                      f"(e.g. {nested[0]}): only the folder itself is searched; pass such a file with --models, "
                      f"or its folder with --weights-dir", file=sys.stderr)
    if not checkpoints:
        raise InputError(f"no checkpoint: none given with --models and no *_best or *_last file in "
                         f"{args.weights_dir} (the default is $WEIGHTS_DIR, else weights/ in the repository; "
                         f"`make demo` writes output/demo/weights: WEIGHTS_DIR=output/demo/weights); train one "
                         f"with ./train.sh or pass --models CKPT")
    for path in checkpoints:
        problem = path_problem(path, want="file")
        if problem:
            fix = (f"pass a checkpoint file in it (e.g. {path}/<name>_best) or --weights-dir {path}"
                   if problem == "is a folder" else "check the path (or train with ./train.sh)")
            raise InputError(f"checkpoint {path} {problem}; {fix}")
    return checkpoints


@contextlib.contextmanager
def writing(what: str, then: str):
    """An OSError inside (disk full, quota, a file system gone read-only) becomes an OutputWriteError
    naming ``what`` could not be written and, in ``then``, where the predictions are and what to do."""
    try:
        yield
    except OSError as exc:
        raise OutputWriteError(f"{what} could not be written ({exc.strerror or exc}); {then}") from exc


def rows_kept(output: Path, predictions, n_videos: int) -> tuple[Path | None, str]:
    """Save the rows (``save_submission``) and say where they are; with no place to keep them, they are
    printed on stdout."""
    where, failures = save_submission(output, predictions)
    done = f"the {len(predictions)} of {n_videos} rows done" if len(predictions) < n_videos else \
        f"the {len(predictions)} predictions"
    if where == output:
        return where, f"{done} are in {output}"
    if where is not None:
        return where, (f"{failures[0]}; {done} are saved in the recovery file {where}: free space on the disk "
                       f"of {output} (or choose another --output) and copy the file there")
    print(submission_text(predictions), end="")
    return None, (f"no place could take {done} ({'; '.join(failures)}): they are printed above on stdout "
                  f"(filename,label); free space and save them")


def predict_videos(args: argparse.Namespace, predictor, videos: list[Path], display: dict, report,
                   explain_dir: Path | None, output: Path) -> tuple[list, float]:
    """Every video's prediction, its report page and heatmaps written as it arrives; on any exception the
    rows done so far are kept (``rows_kept``) before it goes on up."""
    from tqdm import tqdm

    from prediction.explain import explain_prediction, write_heatmaps
    from prediction.predictor import predict_on_video_set
    from prediction.report import page_slug

    start = time.perf_counter()
    predictions = []
    explain_slugs: set[str] = set()
    stream = predict_on_video_set(predictor, videos, prefetch=args.prefetch, keep_going=args.keep_going)
    try:
        for pred in tqdm(stream, total=len(videos), unit="video", desc="predict", disable=not args.progress):
            pred.display_name = display.get(pred.path)
            predictions.append(pred)
            # a video's pages and heatmaps are written as it arrives; then its crops are dropped
            heatmaps = explain_prediction(predictor, pred, args.explain) if args.explain else {}
            with writing(f"the report files of {pred.name}", "free space, or choose another --report or --explain "
                         "folder, and run again"):
                if report is not None:
                    report.add(pred, heatmaps)
                elif heatmaps:
                    write_heatmaps(explain_dir / page_slug(pred.name, explain_slugs), pred, heatmaps)
            pred.face_crops = []
    except BaseException as exc:
        # keep what is done: the rows so far (the failed video and the ones after it have none; after a
        # failed report write, the video whose page failed has its row)
        kept = rows_kept(output, predictions, len(videos))[1]
        failed = "" if isinstance(exc, OutputWriteError) or len(predictions) == len(videos) else \
            f" at {videos[len(predictions)]}"
        print(f"stopped{failed}: {kept}", file=sys.stderr)
        raise
    return predictions, time.perf_counter() - start


def print_summary(summary: dict, output: Path, files: list[Path], labels, row_names: list[str]) -> None:
    print(f"wrote {output} ({summary['n_videos']} rows), {' and '.join(str(f) for f in files)}")
    fb = summary["fallbacks"]
    print(f"fallbacks (predicted 0.5): {fb['total']} (unreadable {fb['unreadable']}, no face {fb['no_face']}, "
          f"error {fb['error']})")
    if fb["no_face"]:
        print(f"{fb['no_face']} video(s) with no face: if their faces are small (far from the camera), try a larger "
              f"--detector-scale (each one's warning above names the value)", file=sys.stderr)
    quoted = [name for name in row_names if spreadsheet_safe(name) != name]
    if quoted:
        print(f"{len(quoted)} video name(s) start like a spreadsheet formula (e.g. {quoted[0]}): their rows in "
              f"{output} begin with a ' so that a spreadsheet shows them as text; rename such files before "
              f"submitting", file=sys.stderr)
    if summary["partly_decoded_videos"]:
        partial = sorted(summary["partly_decoded_videos"])
        print(f"partly decoded (scored on the frames that decode): {len(partial)} video(s): "
              f"{', '.join(partial[:5])}{' ...' if len(partial) > 5 else ''} (warnings above, list in {files[0]})",
              file=sys.stderr)
    if labels:
        print(f"log loss {summary['log_loss']:.4f}  AUC {summary['auc']:.4f}  accuracy {summary['accuracy']:.4f}  "
              f"({summary['n_labelled']} labelled videos, {summary['n_unlabelled']} without label)")
        from prediction.evaluation import format_table

        print(format_table(summary["evaluation"]))


def run(args: argparse.Namespace, argv_used: list[str] | None = None) -> int:
    argv_used = sys.argv[1:] if argv_used is None else argv_used
    output = Path(args.output)
    if args.explain < 0:
        raise InputError(f"--explain {args.explain}: give the number of faces per person to explain (1 or more)")
    check_outputs(output, args.report, args.explain)
    videos = list_input_videos(args.test_dir, args.video)
    options = options_from_args(args)
    checkpoints = choose_checkpoints(args)
    labels, labels_path, display, entries = load_labels(args, videos)
    if args.split:
        videos = videos_in_split(args.split, videos, display, entries)
    folder_of = {display.get(v, v.name): key for v, key in video_folder_keys(args, videos).items()}

    from models.checkpoints import CheckpointError
    from prediction.persons import write_persons
    from prediction.predictor import VideoPredictor
    from prediction.report import ReportWriter

    explain_dir = explain_path_for(output) if args.explain and not args.report else None
    try:
        predictor = VideoPredictor(checkpoints, options, encoder=args.encoder,
                                   keep_face_crops=bool(args.report or args.explain))
    except (CheckpointError, ValueError, RuntimeError) as exc:
        raise InputError(str(exc)) from exc
    print(f"{len(videos)} videos, {len(checkpoints)} model(s): "
          + ", ".join(f"{m.path.name} ({m.encoder}, {m.input_size} px)" for m in predictor.models),
          file=sys.stderr)
    with writing(f"--report {args.report}", "free space, or choose another --report folder, and run again"):
        report = ReportWriter(args.report, labels, predictor.options, args.report_videos) if args.report else None
    predictions, elapsed_s = predict_videos(args, predictor, videos, display, report, explain_dir, output)

    where, kept = rows_kept(output, predictions, len(videos))
    if where != output:
        raise OutputWriteError(kept)
    summary = summarize(predictions, labels, folder_of, entries)
    summary["seconds_per_video"] = elapsed_s / len(predictions)
    summary["models"] = [str(m.path) for m in predictor.models]
    summary["settings"] = settings_record(args.preset, predictor, labels_path if labels else None)
    metrics_file, persons_file = metrics_path_for(output), persons_path_for(output)
    with writing("the metrics, persons file or report", f"{kept}; free space and run again for the rest"):
        write_json_atomic(metrics_file, _json_safe(summary))
        write_persons(persons_file, predictions)
        index = report.finish(predictions, summary, run_context(predictor, argv_used),
                              [output, metrics_file, persons_file]) if report is not None else None
    print_summary(summary, output, [metrics_file, persons_file], labels, [p.name for p in predictions])
    if explain_dir is not None:
        print(f"Grad-CAM heatmaps: {explain_dir}")
    if index is not None:
        print(f"report: {index}")
    errors = summary["fallbacks"]["error"]
    if errors:
        print(f"{errors} video{' failed' if errors == 1 else 's failed'} with an error (tracebacks above; "
              f"their rows hold 0.5): exit code {EXIT_ERROR}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args, sys.argv[1:] if argv is None else list(argv))
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


if __name__ == "__main__":
    sys.exit(main())
