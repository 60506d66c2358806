"""What a folder prediction is given: the request (the command line's choices), and the videos,
checkpoints and labels it names, each checked before any work.

Videos: the files directly in each folder ending in ``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ``.webm`` or
``.m4v`` (any case); other video formats are left out with a warning that counts them. Checkpoints:
``--models``, else the preset's released files, else what ``train.sh`` wrote in the weights folder itself
(never its subfolders). Labels: ``--labels`` or what a dataset reader knows of the folder (a DFDC
``metadata.json`` or ``labels.csv``, its place in an FF++, DFD or Celeb-DF tree; ``--dataset`` names the
reader); with several folders what the readers know of each, rows named FOLDER/FILE. ``--split`` keeps
the videos a dataset puts in one of its official splits.

Problems are raised as ``InputError`` naming the file and the fix; warnings that let the run go on are
handed to the ``warn`` callable the caller gives (the command line prints them on stderr).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from core.errors import InputError
from core.files import path_problem
from core.metrics import Bootstrap
from datasets.dfdc import METADATA_NAME, labels_file_entries
from datasets.readers import SPLITS, FolderLabels, VideoEntry, folder_labels
from prediction.evaluation import folder_keys
from prediction.options import get_preset

Warn = Callable[[str], None]


@dataclass(frozen=True)
class PredictionRequest:
    """One folder prediction as the user asked for it (``predict_folder.py``'s arguments)."""

    output: Path
    test_dirs: tuple[str, ...] | None = None  # folders of videos, or None with ``video``
    video: str | None = None
    preset: str = "default"
    option_overrides: dict = field(default_factory=dict)  # prediction options given on top of the preset
    models: tuple[str, ...] | None = None  # checkpoint files; None: the preset's, else the weights folder's
    weights_dir: str = "weights"
    encoder: str | None = None  # of checkpoints that carry no config and no encoder in their name
    labels: str | None = None  # labels file of one folder; None: what a dataset reader knows of the folder
    no_labels: bool = False
    dataset: str | None = None  # the reader(s) giving the folders' labels, comma-separated; None: the first that can
    split: str | None = None  # predict only the videos of this official split (``SPLITS``); None: every video
    report: str | None = None  # report folder
    report_videos: int = 8  # videos in the report's "highest log loss" list
    explain: int = 0  # Grad-CAM heatmaps of each person's N most fake faces
    prefetch: int = 2  # videos decoded ahead
    keep_going: bool = False  # an unexpected error gives the video 0.5 instead of stopping the run
    progress: bool = True
    bootstrap: Bootstrap = Bootstrap()  # how the metrics' confidence intervals are made
    argv: tuple[str, ...] = ()  # the command line's arguments, for the report's run context


class RunLabels(NamedTuple):
    """The labels of a run's videos."""

    labels: dict[str, int] | None  # keyed by row name; None: no video has one
    path: Path | None  # where the labels come from (the first folder's with several)
    display: dict[Path, str]  # {video: row name} where the row name is not the file name
    entries: dict[str, VideoEntry]  # {row name: the dataset reader's entry (method, dataset, split)}


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


def list_input_videos(test_dirs: tuple[str, ...] | None, video: str | None, warn: Warn) -> list[Path]:
    """The videos to predict; warns about files in a format left out on purpose, with the count."""
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
            warn(f"warning: {folder}: {len(skipped)} file(s) skipped, in video formats this predictor does not read "
                 f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}; e.g. {skipped[0].name}); they get "
                 f"no row. Convert them, e.g. ffmpeg -i {skipped[0].name} {skipped[0].stem}.mp4")
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


def video_folder_keys(test_dirs: tuple[str, ...] | None, videos: list[Path]) -> dict[Path, str]:
    """{video: its folder's short name (``folder_keys``)}."""
    folders = [Path(d) for d in test_dirs] if test_dirs else [videos[0].parent]
    keys = folder_keys(folders)
    by_resolved = {f.resolve(): k for f, k in keys.items()}
    return {v: by_resolved[v.parent.resolve()] for v in videos}


def labels_of(found: FolderLabels) -> dict[str, int]:
    """``file name -> 1 (FAKE) / 0 (REAL)`` of a folder's labelled videos."""
    return {name: int(entry.is_fake) for name, entry in found.entries.items()}


def load_labels(request: PredictionRequest, videos: list[Path], warn: Warn) -> RunLabels:
    """The labels of ``videos``. One folder (or ``--video``): ``--labels`` or what the dataset readers know
    of the folder (``--dataset``: the named one; DFDC: its ``metadata.json`` or ``labels.csv``; FF++, DFD,
    Celeb-DF: the folder's place in the dataset's tree). Several folders: what the readers know of each,
    rows named FOLDER/FILE. ``--no-labels``: none read."""
    several = bool(request.test_dirs) and len(request.test_dirs) > 1
    if not several:
        if request.no_labels:
            return RunLabels(None, None, {}, {})
        found = (labels_file_entries(request.labels) if request.labels
                 else folder_labels(videos[0].parent, request.dataset))
        if found is None:
            return RunLabels(None, videos[0].parent / METADATA_NAME, {}, {})
        where = request.test_dirs[0] if request.test_dirs else request.video
        return RunLabels(checked_labels(labels_of(found), videos, found.source, where, warn), found.source, {},
                         dict(found.entries))
    if request.labels:
        raise InputError("--labels takes the labels of one folder; with several --test-dir folders each one's "
                         f"{METADATA_NAME} is read (put one in each folder, or score the folders one at a time)")
    keys = video_folder_keys(request.test_dirs, videos)
    display = {v: f"{keys[v]}/{v.name}" for v in videos}
    if request.no_labels:
        return RunLabels(None, None, display, {})
    labels: dict[str, int] = {}
    entries: dict[str, VideoEntry] = {}
    for test_dir in request.test_dirs:
        folder = Path(test_dir)
        found = folder_labels(folder, request.dataset)
        if found is None:
            warn(f"labels: no dataset reader knows the labels of {folder} (no {METADATA_NAME} in it, not a folder "
                 f"of a dataset's tree); its videos are predicted, not scored")
            continue
        mine = [v for v in videos if v.parent.resolve() == folder.resolve()]
        checked = checked_labels(labels_of(found), mine, found.source, test_dir, warn)
        if checked:
            key = keys[mine[0]]
            labels.update({f"{key}/{name}": y for name, y in checked.items()})
            entries.update({f"{key}/{name}": entry for name, entry in found.entries.items()})
    return RunLabels(labels or None, Path(request.test_dirs[0]) / METADATA_NAME, display, entries)


def videos_in_split(split: str, videos: list[Path], labels: RunLabels) -> list[Path]:
    """The videos whose dataset puts them in the official ``split`` (``--split``)."""
    if split not in SPLITS:
        raise InputError(f"--split {split}: expected one of {', '.join(SPLITS)}")
    if not labels.entries:
        raise InputError(f"--split {split} keeps the videos a dataset's reader puts in its official {split} split, "
                         f"and no reader knows these videos' labels; pass the folders of a dataset's tree (e.g. "
                         f"ROOT/Celeb-real), or leave --split out")
    kept = [v for v in videos if getattr(labels.entries.get(labels.display.get(v, v.name)), "split", None) == split]
    if not kept:
        raise InputError(f"--split {split}: none of the {len(videos)} videos is in the official {split} split of "
                         f"its dataset; pass another --split or leave it out")
    return kept


def checked_labels(labels: dict[str, int], videos: list[Path], labels_path: Path, where,
                   warn: Warn) -> dict[str, int] | None:
    """The labels, after warning when they name none (None) or only some of the videos."""
    n_labelled, unmatched = label_coverage(labels, videos)
    if n_labelled == 0:
        warn(f"warning: labels file {labels_path} names none of the {len(videos)} video(s) in {where} "
             f"(it names e.g. {', '.join(sorted(labels)[:3])}); no score is computed. Pass the labels of "
             f"these videos with --labels")
        return None
    if n_labelled < len(videos) or unmatched:
        warn(f"labels: {n_labelled} of {len(videos)} videos have a label in {labels_path}; "
             f"{len(unmatched)} labels name no video here")
    return labels


def choose_checkpoints(request: PredictionRequest, warn: Warn) -> list[Path]:
    """``--models``, else the preset's files, else what ``train.sh`` wrote in ``--weights-dir`` itself."""
    weights_dir = request.weights_dir
    if request.models:
        checkpoints = [Path(p) for p in request.models]
    else:
        checkpoints = preset_checkpoints(request.preset, weights_dir)
        if checkpoints is None:
            checkpoints = find_checkpoints(weights_dir)
            nested = subfolder_checkpoints(weights_dir)
            if nested:
                warn(f"note: {len(nested)} checkpoint(s) in subfolders of {weights_dir} are not used "
                     f"(e.g. {nested[0]}): only the folder itself is searched; pass such a file with --models, "
                     f"or its folder with --weights-dir")
    if not checkpoints:
        raise InputError(f"no checkpoint: none given with --models and no *_best or *_last file in "
                         f"{weights_dir} (the default is $WEIGHTS_DIR, else weights/ in the repository; "
                         f"`make demo` writes output/demo/weights: WEIGHTS_DIR=output/demo/weights); train one "
                         f"with ./train.sh or pass --models CKPT")
    for path in checkpoints:
        problem = path_problem(path, want="file")
        if problem:
            fix = (f"pass a checkpoint file in it (e.g. {path}/<name>_best) or --weights-dir {path}"
                   if problem == "is a folder" else "check the path (or train with ./train.sh)")
            raise InputError(f"checkpoint {path} {problem}; {fix}")
    return checkpoints

