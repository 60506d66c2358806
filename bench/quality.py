"""Quality on real deepfakes with the test fold rotated: every FF++ video of ``ffpp_train`` is tested once,
by a model that never saw its identity and whose checkpoint was picked on another fold; then the same
models on DFDC clips they never trained on (``cross_dev`` + ``real_small``'s DFDC clips).

    python bench/quality.py [--work output/bench_quality] [--runs real:111 self_blended:111 real:555 real3d:111 ...]
        [--test-folds 0 1 2 3 4] [--config configs/ffpp_cpu.json] [--predict-only] [--bootstrap 1000]
        [--ffpp ../shared/data/ffpp_train] [--cross-dev ../shared/data/cross_dev]
        [--real-small ../shared/data/real_small] [--write-docs docs/benchmarks.md]

A run is ``RECIPE:SEED``; a recipe (:data:`RECIPES`) names its config, its fake source and whether it trains
on the clips stage's face-track clips: ``real``, ``self_blended``, ``both`` (the 2D recipe,
``configs/ffpp_cpu.json``, or ``--config``) and ``real3d`` (the 3D recipe, ``configs/ffpp_3d_cpu.json``:
an inflated Lite0 on 8-frame chunks, real fakes; its data needs ``./preprocess_data.sh WORK/data --clips``,
which the bench runs when a run needs it) and ``real3d_from2d`` (``configs/ffpp_3d_from2d_cpu.json``: the
``real`` run of the same seed and test fold, inflated and fine-tuned on the clips; list that run first, its
checkpoint goes in as ``--set init_from=...``). For each run and test fold ``t`` the validation fold is
``(t+1) % 5`` and training goes through the user's command::

    WEIGHTS_DIR=WORK/weights/RECIPE_SEED/testT LOG_DIR=WORK/logs/RECIPE_SEED/testT FOLD=(t+1)%5 TEST_FOLD=t \\
        TRAIN_ARGS="--set fakes=SOURCE" ./train.sh --resume WORK/data 0 CONFIG SEED

(a complete run returns at once; ``--predict-only`` skips preprocessing and training and uses the runs
whose ``_best`` holds its calibration, i.e. whose training ended; the wall time of a training the bench
ran is recorded in ``WORK/train_seconds.json``). Predictions go through the predictor library with every
model of a group at once (fold t's test videos with fold t's models; the cross-dataset clips with every
model), so a video's faces are detected once; each model's items are cached in ``WORK/predictions/GROUP/``
keyed by the checkpoint's sha256, the predictor options and each video's size and mtime (a 2D model's
face scores, a 3D model's chunk scores, each with its person), so a rerun predicts only what changed.
Video scores, ensembles (per seed and fold the real + self-blended pair and the 2D + 3D pair; a recipe's
fold models on the cross-dataset clips) and the raw (uncalibrated) scores are then made from the cached
items by the predictor's own rules (``prediction.predictor.ScoreRules``: each model's temperature, the
models of a kind combined, the kinds pooled per person by ``--family-weights``, default 50:50, then the
video rule), and scored by ``prediction.evaluation`` with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, write_section  # noqa: E402
from core.files import write_json_atomic  # noqa: E402
from core.metrics import Bootstrap  # noqa: E402
from core.registry import Registry  # noqa: E402
from datasets.dfdc import METADATA_NAME  # noqa: E402
from datasets.readers import scan_root  # noqa: E402
from models.checkpoints import checkpoint_family, checkpoint_input_spec, read_checkpoint  # noqa: E402
from models.weights import file_sha256  # noqa: E402
from training.datasets.classifier_dataset import read_folds  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"
SECTION = "## Quality on real video, k-fold rotation (bench/quality.py)"
PART = "dfdc_train_part_0"
N_FOLDS = 5
DFDC_NAME = re.compile(r"^[a-z]{10}\.mp4$")  # DFDC clip names: 10 lowercase letters
TRAIN_SECONDS = "train_seconds.json"  # WORK/: the wall time of each training the bench ran, "RUN/testT" -> s
CONFIG_2D, CONFIG_3D = "configs/ffpp_cpu.json", "configs/ffpp_3d_cpu.json"
CONFIG_3D_FROM_2D = "configs/ffpp_3d_from2d_cpu.json"
CONFIG_3D_FROM_2D_160 = "configs/ffpp_3d_from2d_160_cpu.json"


@dataclass(frozen=True)
class Recipe:
    """What a run trains: its config, its fake source (``TRAIN_ARGS="--set fakes=..."``) and whether it trains
    on the clips stage's face-track clips (a 3D family: the data needs ``./preprocess_data.sh ROOT --clips``)."""

    config: str
    fakes: str
    clips: bool = False
    starts_from: str | None = None  # a recipe whose checkpoint (same seed and folds) is the run's init_from
    clip_size_px: int | None = None  # the clips stage's --clip-size it needs (None: the stage's default)


RECIPES: Registry[Recipe] = Registry("quality recipe")
RECIPES.register("real", Recipe(CONFIG_2D, "real"))  # the data's fake videos
RECIPES.register("self_blended", Recipe(CONFIG_2D, "self_blended"))  # SBI fakes made from the reals only
RECIPES.register("both", Recipe(CONFIG_2D, "both"))
RECIPES.register("real3d", Recipe(CONFIG_3D, "real", clips=True))  # inflated Lite0 on the real fakes' clips
# the trained 2D real-fake model of the same seed and folds, inflated, fine-tuned on the clips
RECIPES.register("real3d_from2d", Recipe(CONFIG_3D_FROM_2D, "real", clips=True, starts_from="real"))
# the same at the 2D model's own 160 px, from clips cut at 184 px (the config's 0.87 crop is 160 px)
RECIPES.register("real3d_from2d_160", Recipe(CONFIG_3D_FROM_2D_160, "real", clips=True, starts_from="real",
                                             clip_size_px=184))

# the two-model ensembles of one seed (per test fold; on the cross-dataset clips all their fold models):
# (recipe, recipe, what the row shows). The predictor pools a 2D and a 3D model per person by the family
# weights (default 50:50), two models of one kind by --combine (mean)
ENSEMBLES = (("real", "self_blended", "mixed sources"), ("real", "real3d", "2D + 3D"),
             ("real", "real3d_from2d", "2D + 3D from 2D"), ("real", "real3d_from2d_160", "2D + 3D from 2D, 160 px"))
# the protocol in words, written above the tables (docs/benchmarks.md)
PROTOCOL = [
    ('What it measures. For each run (recipe and seed) and test fold t = 0..4, a model is trained on '
     'the other three folds with the checkpoint picked on fold (t+1) % 5 (`FOLD=(t+1)%5 TEST_FOLD=t '
     './train.sh --resume ...`, weights in `WORK/weights/RECIPE_SEED/testT`) and its temperature fitted on '
     "that same validation fold. Each fold's videos are scored by that fold's model, so all 104 "
     '`ffpp_train` videos are tested once, by a model that never saw their identity and whose checkpoint '
     'was not chosen on them. Recipes: `real`, `self_blended`, `both` (the 2D CPU recipe, '
     '`configs/ffpp_cpu.json`, with that fake source) and `real3d` (the 3D CPU recipe, '
     '`configs/ffpp_3d_cpu.json`: EfficientNet-Lite0 inflated to 3D on 8-frame chunks of the face-track clips '
     'of `./preprocess_data.sh ROOT --clips`, real fakes) and `real3d_from2d` (`configs/ffpp_3d_from2d_cpu.json`: '
     'the `real` model of the same seed and test fold inflated, head included, and fine-tuned on the clips at '
     '112 px; `real3d_from2d_160` the same at 160 px, from clips cut at 184 px). The pooled numbers (AUC, AP, log loss, each with a '
     '95% bootstrap interval, videos resampled within each label) are given overall and per FF++ method (all '
     "real videos against that method's fakes), with the log loss of the raw scores next to the calibrated "
     'one (the AUC does not change with calibration), the mean and sd of the five per-fold AUCs (20-22 videos '
     "each; the two fakes whose original is missing, 392_339_F2F and _FS, are tested with 339's fold), the "
     'spread between seeds of a recipe, the mixed-source ensemble (per fold, the real-fake and the '
     'self-blended 2D model of one seed, each calibrated, averaged) and the 2D + 3D ensemble (per fold, the '
     'real-fake 2D and 3D models of one seed, each calibrated, pooled per person 50:50 as the predictor '
     'does by default, then the video rule). Across datasets: the 14 DFDC clips of `cross_dev` plus the 2 '
     'DFDC clips of `real_small`, scored by each recipe as the ensemble of its 5 fold models (and the mean '
     "and sd of its single fold models' AUCs), and by the same ensembles of two recipes (all their fold "
     'models).'),
    "",
    ('Predictions are cached per checkpoint (sha256), predictor options and video file: a rerun predicts '
     'only what changed (`WORK/predictions/`). `--test-folds 0` with one run is the earlier single-fold '
     'protocol (test fold 0, validation fold 1).'),
]


@dataclass(frozen=True)
class Run:
    recipe: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.recipe}_{self.seed}"

    @property
    def spec(self) -> Recipe:
        return RECIPES.get(self.recipe)


@dataclass
class Video:
    """A labelled test video: where it is, its label and its manipulation method (fakes of FF++)."""

    name: str
    path: Path
    label: int
    method: str | None = None
    group: str = ""  # "fold T" or "cross"


@dataclass
class ModelScores:
    """One checkpoint's cached items on a group's videos: name -> entry (``STORED_ITEMS``: its face or
    chunk scores with their persons, each face's person, the fallback); ``kind``: the model's family kind."""

    checkpoint: Path
    temperature: float | None
    videos: dict[str, dict] = field(default_factory=dict)
    kind: str = "2d"


def parse_run(text: str) -> Run:
    recipe, _, seed = text.partition(":")
    if not seed.isdigit():
        raise argparse.ArgumentTypeError(f"--runs {text!r}: give RECIPE:SEED, e.g. real:111")
    if recipe not in RECIPES:
        raise argparse.ArgumentTypeError(f"--runs {text!r}: unknown recipe {recipe!r}; known: "
                                         f"{', '.join(RECIPES.names())}")
    return Run(recipe, int(seed))


def _run(command: list[str], env: dict | None = None, log: Path | None = None) -> float:
    start = time.perf_counter()
    with open(log, "a") if log else open(os.devnull, "w") as sink:
        subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, check=True,
                       stdout=sink, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def validation_fold(test_fold: int) -> int:
    return (test_fold + 1) % N_FOLDS


def weights_dir(work: Path, run: Run, test_fold: int) -> Path:
    return work / "weights" / run.name / f"test{test_fold}"


def starting_checkpoint(work: Path, run: Run, test_fold: int) -> Path | None:
    """For a recipe that starts from another's model: that recipe's finished checkpoint of the same seed and
    test fold (trained on the same folds, so it never saw the validation or test videos); else None."""
    if run.spec.starts_from is None:
        return None
    return finished_checkpoint(work, Run(run.spec.starts_from, run.seed), test_fold)


def train_env(work: Path, run: Run, test_fold: int) -> dict[str, str]:
    """The environment of ``train.sh`` for one run and test fold (the layout the runs are trained in)."""
    start = starting_checkpoint(work, run, test_fold)
    return {"WEIGHTS_DIR": str(weights_dir(work, run, test_fold)),
            "LOG_DIR": str(work / "logs" / run.name / f"test{test_fold}"),
            "FOLD": str(validation_fold(test_fold)), "TEST_FOLD": str(test_fold),
            "TRAIN_ARGS": f"--set fakes={run.spec.fakes}" + (f" --set init_from={start}" if start else "")}


def run_config(run: Run, override: str | None = None) -> str:
    """The config a run trains with: its recipe's; ``override`` (``--config``) replaces a 2D recipe's."""
    return run.spec.config if run.spec.clips or override is None else override


def train_command(data_root: Path, run: Run, override: str | None = None) -> list[str]:
    return ["./train.sh", "--resume", str(data_root), "0", run_config(run, override), str(run.seed)]


def finished_checkpoint(work: Path, run: Run, test_fold: int) -> Path | None:
    """The run's ``_best`` once its training ended (the calibration is written at the end), else None."""
    found = sorted(weights_dir(work, run, test_fold).glob("*_best"))
    if not found:
        return None
    return found[0] if read_checkpoint(found[0]).get("calibration") else None


def checkpoint_facts(checkpoint: Path) -> tuple[float | None, str]:
    """The checkpoint's stored temperature (None: none) and its family kind (``2d``, ``3d``)."""
    from prediction.families import kind_of

    data = read_checkpoint(checkpoint)
    config = data.get("config") or {}
    spec = checkpoint_input_spec(data, config, checkpoint_family(data, checkpoint), checkpoint)
    return (data.get("calibration") or {}).get("temperature"), kind_of(spec)


def training_seconds(work: Path, run: Run, test_fold: int) -> tuple[float | None, str]:
    """The wall time of a run's training: recorded when the bench trained it (``TRAIN_SECONDS``), else from
    its weights folder's files (``_args.json`` is written when the first epoch starts, ``_best`` last, with
    the calibration), which leaves out the start-up and counts any pause between a stop and a resume."""
    times = work / TRAIN_SECONDS
    recorded = json.loads(times.read_text()).get(f"{run.name}/test{test_fold}") if times.is_file() else None
    if recorded is not None:
        return float(recorded), "recorded"
    folder = weights_dir(work, run, test_fold)
    args, best = sorted(folder.glob("*_args.json")), sorted(folder.glob("*_best"))
    if not args or not best:
        return None, "-"
    seconds = best[0].stat().st_mtime - args[0].stat().st_mtime
    if seconds <= 0:  # a later train.sh --resume of the finished run rewrote _args.json: the span is lost
        return None, "-"
    return seconds, "file times"


def record_training_seconds(work: Path, run: Run, test_fold: int, seconds: float) -> None:
    times = work / TRAIN_SECONDS
    recorded = json.loads(times.read_text()) if times.is_file() else {}
    recorded[f"{run.name}/test{test_fold}"] = round(seconds, 1)
    write_json_atomic(times, recorded)


def video_fingerprint(path: Path) -> list:
    stat = path.resolve().stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


# ---- the videos --------------------------------------------------------------------------------------


def entries_of(root: Path) -> dict[str, Video]:
    """The labelled videos of a DFDC-layout root, by file name (the dataset reader's labels and methods)."""
    entries, _ = scan_root(root)
    return {e.path.name: Video(e.path.name, e.path, int(e.is_fake), e.method if e.is_fake else None)
            for e in entries}


def identities(video_id: str) -> set[str]:
    """The FF++ identities a video shows: ``033`` -> {033}; ``033_097_DF`` -> {033, 097}."""
    return {part for part in video_id.split("_")[:2] if part.isdigit()}


def fold_of_videos(data_root: Path) -> dict[str, int]:
    """Video file name -> its fold: folds.csv's, and for a fake that folds.csv leaves out (its original is
    missing, so it has no crops) the fold of a video that shares an identity with it (FF++ pairs share a
    fold), so that the model testing it never saw that identity either."""
    folds = read_folds(data_root)
    fold_of = {f"{v}.mp4": int(k) for v, k in zip(folds["video"], folds["fold"])}
    by_identity = {i: fold for name, fold in fold_of.items() for i in identities(name.removesuffix(".mp4"))}
    for name in entries_of(data_root):
        if name not in fold_of:
            shared = sorted({by_identity[i] for i in identities(name.removesuffix(".mp4")) if i in by_identity})
            if len(shared) == 1:
                fold_of[name] = shared[0]
            else:
                print(f"{name}: in no fold of {data_root / 'folds.csv'} and no single fold holds its identities; "
                      f"left out", flush=True)
    return fold_of


def fold_videos(data_root: Path, test_fold: int, fold_of: dict[str, int] | None = None) -> list[Video]:
    """The videos of ``test_fold`` (``fold_of_videos``), with their labels and methods."""
    fold_of = fold_of_videos(data_root) if fold_of is None else fold_of
    videos = [v for name, v in sorted(entries_of(data_root).items()) if fold_of.get(name) == test_fold]
    for v in videos:
        v.group = f"fold {test_fold}"
    return videos


def cross_videos(cross_dev: Path, real_small: Path) -> list[Video]:
    """``cross_dev``'s DFDC clips and the DFDC clips of ``real_small`` (names of 10 lowercase letters)."""
    videos = list(entries_of(cross_dev).values()) if (cross_dev / PART / METADATA_NAME).is_file() else []
    if (real_small / PART / METADATA_NAME).is_file():
        videos += [v for name, v in entries_of(real_small).items() if DFDC_NAME.match(name)]
    for v in videos:
        v.group = "cross"
    return sorted(videos, key=lambda v: v.name)


# ---- predictions, cached per checkpoint -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredItems:
    """How one family kind's items of a video are cached: ``store(prediction, row, kinds)`` -> the entry's
    fields for model ``row`` of a ``VideoPrediction`` (``kinds``: the predictor's model kinds), and
    ``items(entry)`` -> the ``prediction.families.ModelItems`` the predictor's ``ScoreRules`` pool."""

    store: Callable[..., dict]
    items: Callable[[dict], object]


def _store_faces(pred, row: int, kinds: list[str]) -> dict:
    """An image model's face scores (its row among the image models of ``face_scores``)."""
    image_row = [r for r, kind in enumerate(kinds) if kind == kinds[row]].index(row)
    return {"face_scores": pred.face_scores[image_row].tolist() if pred.face_scores.size else []}


def _face_items(entry: dict):
    from prediction.families import ModelItems

    return ModelItems(np.asarray(entry["face_scores"], dtype=np.float64),
                      np.asarray(entry["face_persons"], dtype=np.int64))


def _store_chunks(pred, row: int, kinds: list[str]) -> dict:
    """A clip model's chunk scores, each with its person and first and last video frame."""
    mine = [chunk for chunk in pred.chunks if chunk.model == row]
    return {"chunk_scores": [c.score for c in mine], "chunk_persons": [c.person for c in mine],
            "chunk_frames": [list(c.frames) for c in mine]}


def _chunk_items(entry: dict):
    from prediction.families import ModelItems

    return ModelItems(np.asarray(entry["chunk_scores"], dtype=np.float64),
                      np.asarray(entry["chunk_persons"], dtype=np.int64),
                      [tuple(f) for f in entry["chunk_frames"]])


STORED_ITEMS: Registry[StoredItems] = Registry("cached model items")  # by family kind (prediction.families)
STORED_ITEMS.register("2d", StoredItems(_store_faces, _face_items))
STORED_ITEMS.register("3d", StoredItems(_store_chunks, _chunk_items))
# fallbacks that leave one model without items but the video scored by the others (a clip model alone
# gives the video 0.5 with "no_clip"; beside an image model the persons keep their 2D score)
MODEL_FALLBACKS = ("no_clip",)


def cache_path(work: Path, group: str, checkpoint: Path) -> Path:
    return work / "predictions" / group.replace(" ", "") / f"{file_sha256(checkpoint)[:20]}.json"


def cached_scores(path: Path, options: dict, videos: list[Video]) -> dict[str, dict]:
    """The cached entries of ``videos`` whose input is unchanged (same options, same file)."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("options") != options:
        return {}
    return {v.name: data["videos"][v.name] for v in videos
            if v.name in data["videos"] and data["videos"][v.name]["input"] == video_fingerprint(v.path)}


def predict_missing(checkpoints: list[Path], videos: list[Video], options) -> dict[Path, dict[str, dict]]:
    """Every checkpoint's items (face scores of image models, chunk scores of clip models) and each face's
    person on ``videos`` (one predictor: faces detected once, the persons shared by every model)."""
    from prediction.predictor import VideoPredictor, predict_on_video_set

    predictor = VideoPredictor(checkpoints, options)
    kinds = list(predictor.model_kinds)
    found: dict[Path, dict[str, dict]] = {c: {} for c in checkpoints}
    for video, pred in zip(videos, predict_on_video_set(predictor, [v.path for v in videos])):
        for row, checkpoint in enumerate(checkpoints):
            found[checkpoint][video.name] = {
                "input": video_fingerprint(video.path), "fallback": pred.fallback_kind,
                "face_persons": pred.face_persons.tolist(), **STORED_ITEMS.get(kinds[row]).store(pred, row, kinds)}
    return found


def prediction_calls(work: Path, group: str) -> list[dict]:
    """The predictor calls the bench made for ``group`` (``WORK/predictions/GROUP/calls.json``): per call the
    models (name, kind), the videos and the wall time."""
    path = work / "predictions" / group.replace(" ", "") / "calls.json"
    return json.loads(path.read_text()) if path.is_file() else []


def record_prediction_call(work: Path, group: str, models: list[ModelScores], n_videos: int, seconds: float) -> None:
    calls = prediction_calls(work, group) + [
        {"models": [[f"{m.checkpoint.parent.parent.name}/{m.checkpoint.parent.name}", m.kind] for m in models],
         "videos": n_videos, "wall_s": round(seconds, 1)}]
    write_json_atomic(work / "predictions" / group.replace(" ", "") / "calls.json", calls)


def group_scores(work: Path, group: str, checkpoints: list[Path], videos: list[Video], options) -> dict[Path, ModelScores]:
    """Each checkpoint's items on ``videos``: from the cache, the missing ones predicted (all the
    checkpoints that miss some video in one predictor run, its wall time recorded) and cached."""
    record = options.as_dict()
    scores, paths = {}, {}
    for checkpoint in checkpoints:
        paths[checkpoint] = cache_path(work, group, checkpoint)
        temperature, kind = checkpoint_facts(checkpoint)
        scores[checkpoint] = ModelScores(checkpoint, temperature, cached_scores(paths[checkpoint], record, videos),
                                         kind)
    missing = [c for c in checkpoints if len(scores[c].videos) < len(videos)]
    if missing:
        todo = [v for v in videos if any(v.name not in scores[c].videos for c in missing)]
        print(f"{group}: predicting {len(todo)} videos with {len(missing)} model(s)", flush=True)
        start = time.perf_counter()
        for checkpoint, found in predict_missing(missing, todo, options).items():
            scores[checkpoint].videos.update(found)
            write_json_atomic(paths[checkpoint], {"checkpoint": str(checkpoint), "kind": scores[checkpoint].kind,
                                                  "options": record, "videos": scores[checkpoint].videos})
        record_prediction_call(work, group, [scores[c] for c in missing], len(todo), time.perf_counter() - start)
    return scores


def shared_persons(entries: list[dict], video: str) -> np.ndarray:
    """Each face's person, which the models' entries share (one detection); RuntimeError when they differ."""
    found = [e["face_persons"] for e in entries if e.get("face_persons")]
    if any(persons != found[0] for persons in found[1:]):
        raise RuntimeError(f"{video}: the cached models found different faces; delete the cache and run again")
    return np.asarray(found[0] if found else [], dtype=np.int64)


def video_probabilities(models: list[ModelScores], video: str, options) -> tuple[float, float]:
    """(calibrated, raw) probability of ``video`` from the models' cached items, by the predictor's rules
    (``ScoreRules``: each model's temperature, the models of a kind combined, the kinds pooled per person,
    the video rule); 0.5 for a video that fell back (no frame, no face; clip models alone: no chunk)."""
    from prediction.predictor import NEUTRAL_PROBABILITY, ScoreRules

    entries = [m.videos[video] for m in models]
    if any(e["fallback"] and e["fallback"] not in MODEL_FALLBACKS for e in entries):
        return NEUTRAL_PROBABILITY, NEUTRAL_PROBABILITY
    persons = shared_persons(entries, video)
    items = [STORED_ITEMS.get(m.kind).items(e) for m, e in zip(models, entries)]
    if any(m.kind == "2d" and it.scores.size != persons.size for m, it in zip(models, items)):
        raise RuntimeError(f"{video}: the cached models found different faces; delete the cache and run again")
    rules = ScoreRules.of(options, [m.temperature if options.calibration == "on" else None for m in models],
                          [m.kind for m in models])
    n_persons = int(persons.max(initial=-1)) + 1
    calibrated = rules.video_score_of(rules.pool(items, n_persons))
    raw = rules.video_score_of(rules.pool(items, n_persons, calibrated=False))
    if calibrated is None:
        return NEUTRAL_PROBABILITY, NEUTRAL_PROBABILITY
    return calibrated, raw


# ---- scoring the rows ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a table: a name and, per video group, the models combined for it."""

    name: str
    models: dict[str, list[ModelScores]]  # group -> the models averaged on its videos


def scored(row: Row, videos: list[Video], options) -> tuple[list, list]:
    """The row's (calibrated, raw) ``ScoredVideo`` lists over the videos of the groups it has models for."""
    from prediction.evaluation import ScoredVideo

    calibrated, raw = [], []
    for v in videos:
        models = row.models.get(v.group)
        if not models:
            continue
        p, p_raw = video_probabilities(models, v.name, options)
        calibrated.append(ScoredVideo(v.name, "all", v.label, p, method=v.method))
        raw.append(ScoredVideo(v.name, "all", v.label, p_raw, method=v.method))
    return calibrated, raw


def fold_aucs(row: Row, videos: list[Video], options) -> list[float]:
    """The AUC of each group (test fold) on its own, for the spread between folds."""
    from core.metrics import auc

    found = []
    for group in sorted(row.models):
        mine = [v for v in videos if v.group == group]
        pairs = [(v.label, video_probabilities(row.models[group], v.name, options)[0]) for v in mine]
        value = auc([y for y, _ in pairs], [p for _, p in pairs]) if pairs else float("nan")
        if value == value:
            found.append(value)
    return found


def evaluated(row: Row, videos: list[Video], options, bootstrap: Bootstrap) -> dict:
    """The row's evaluation (overall and per method, with intervals), the raw scores' evaluation and the
    per-fold AUCs."""
    from prediction.evaluation import evaluate

    calibrated, raw = scored(row, videos, options)
    return {"calibrated": evaluate(calibrated, bootstrap), "raw": evaluate(raw, bootstrap),
            "fold_aucs": fold_aucs(row, videos, options)}


def cell(scores: dict, key: str, digits: int = 3) -> str:
    value = scores.get(key)
    if value is None or value != value:
        return "-"
    ci = (scores.get("ci") or {}).get(key)
    return f"{value:.{digits}f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} ({len(values)})" if len(values) > 1 else \
        f"{values[0]:.3f} (1)"


def main_table(results: dict[str, dict]) -> list[str]:
    lines = ["| row | videos (fake) | AUC | AP | log loss | log loss raw | AUC per fold, mean ± sd (folds) |",
             "|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        s, raw = result["calibrated"]["overall"], result["raw"]["overall"]
        lines.append(f"| {name} | {s['n_videos']} ({s['n_fake']}) | {cell(s, 'auc')} | {cell(s, 'average_precision')}"
                     f" | {cell(s, 'log_loss')} | {cell(raw, 'log_loss')} | {spread(result['fold_aucs'])} |")
    return lines


def method_table(results: dict[str, dict]) -> list[str]:
    methods = sorted({m for r in results.values() for m in r["calibrated"]["per_method"]})
    lines = ["| row | " + " | ".join(f"{m}: AUC / log loss" for m in methods) + " |",
             "|---" * (len(methods) + 1) + "|"]
    for name, result in results.items():
        per = result["calibrated"]["per_method"]
        lines.append(f"| {name} | " + " | ".join(
            f"{cell(per[m], 'auc')} / {cell(per[m], 'log_loss', 2)} ({per[m]['n_fake']} fakes)" if m in per else "-"
            for m in methods) + " |")
    return lines


def seed_spread(results: dict[str, dict], runs: list[Run]) -> list[str]:
    """Per recipe with several seeds: each seed's pooled AUC and log loss, and their spread."""
    lines = []
    for recipe in dict.fromkeys(r.recipe for r in runs):
        mine = [r for r in runs if r.recipe == recipe and r.name in results]
        if len(mine) < 2:
            continue
        aucs = [results[r.name]["calibrated"]["overall"]["auc"] for r in mine]
        losses = [results[r.name]["calibrated"]["overall"]["log_loss"] for r in mine]
        lines.append(f"- {recipe}, seeds {' / '.join(str(r.seed) for r in mine)}: AUC "
                     f"{' / '.join(f'{a:.3f}' for a in aucs)} (spread {max(aucs) - min(aucs):.3f}), log loss "
                     f"{' / '.join(f'{x:.3f}' for x in losses)} (spread {max(losses) - min(losses):.3f})")
    return lines


# ---- the run -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ffpp", type=Path, default=SHARED / "ffpp_train")
    parser.add_argument("--cross-dev", type=Path, default=SHARED / "cross_dev")
    parser.add_argument("--real-small", type=Path, default=SHARED / "real_small")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "output" / "bench_quality")
    parser.add_argument("--runs", nargs="+", type=parse_run, metavar="RECIPE:SEED",
                        help=f"runs to score, RECIPE one of {', '.join(RECIPES.names())} (default: real:111 "
                             "self_blended:111 real:555 real3d:111 real3d:555, or every --recipes x --seeds pair)")
    parser.add_argument("--recipes", nargs="+", choices=RECIPES.names(), help="with --seeds: every pair is a run")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--test-folds", nargs="+", type=int, default=list(range(N_FOLDS)),
                        help="test folds to rotate over (each validated on the next one)")
    parser.add_argument("--config", help=f"the 2D recipes' config (default: each recipe's; {CONFIG_2D} for the 2D "
                                          f"ones, {CONFIG_3D} for real3d, which this does not change)")
    parser.add_argument("--predict-only", action="store_true",
                        help="no preprocessing or training: score the runs whose training ended")
    parser.add_argument("--no-cross", dest="cross", action="store_false", help="skip the cross-dataset clips")
    parser.add_argument("--bootstrap", type=int, default=Bootstrap.resamples, metavar="N")
    parser.add_argument("--bootstrap-seed", type=int, default=Bootstrap.seed)
    parser.add_argument("--write-docs", type=Path)
    return parser


def chosen_runs(args) -> list[Run]:
    if args.runs:
        return args.runs
    if args.recipes or args.seeds:
        return [Run(recipe, seed) for recipe in args.recipes or ["real"] for seed in args.seeds or [111]]
    return [Run("real", 111), Run("self_blended", 111), Run("real", 555), Run("real3d", 111), Run("real3d", 555)]


def preprocess_command(data_root: Path, clips: bool, clip_size_px: int | None = None) -> list[str]:
    """The user's preprocessing command; ``clips``: with the face-track clips of the 3D recipes, cut at
    ``clip_size_px`` (None: the stage's default)."""
    clip_args = ["--clips", *(["--clip-size", str(clip_size_px)] if clip_size_px else [])] if clips else []
    return ["./preprocess_data.sh", str(data_root), *clip_args, "--workers", str(os.cpu_count() or 1),
            "--no-progress"]


def prepare(args, data_root: Path, log: Path) -> dict[str, float]:
    """Link the FF++ part into WORK/data and preprocess it, with the clips stage when a run's recipe needs it
    (stage markers: near 0 s when done); the wall time of each step that had work to do."""
    data_root.mkdir(parents=True, exist_ok=True)
    if not (data_root / PART).exists():
        (data_root / PART).symlink_to((args.ffpp / PART).resolve())
    seconds = {}
    first = not (data_root / "folds.csv").is_file()
    print(f"preprocessing {data_root} (log {log})", flush=True)
    took = _run(preprocess_command(data_root, False), log=log)
    if first:
        seconds["preprocessing"] = took
    if any(run.spec.clips for run in args.runs):
        first = not (data_root / "clips").is_dir()
        print(f"the clips stage on {data_root} (log {log})", flush=True)
        # one clip size per data root: the largest a run asks for (training resizes clips to its own size)
        sizes = [run.spec.clip_size_px for run in args.runs if run.spec.clips and run.spec.clip_size_px]
        took = _run(preprocess_command(data_root, True, max(sizes, default=None)), log=log)
        if first:
            seconds["clips stage"] = took
    return seconds


def checkpoints_by_fold(args, work: Path, data_root: Path, log: Path) -> dict[int, dict[Run, Path]]:
    """Per test fold, each run's finished ``_best`` (trained first unless --predict-only; the wall time of a
    training that ran to its end recorded in ``WORK/train_seconds.json``)."""
    found: dict[int, dict[Run, Path]] = {}
    for run in args.runs:
        for t in args.test_folds:
            if run.spec.starts_from and starting_checkpoint(work, run, t) is None and not args.predict_only:
                print(f"{run.name} test fold {t}: it starts from {run.spec.starts_from}:{run.seed}'s model of this fold, "
                      f"which is not trained (list that run before it); not trained", flush=True)
            elif not args.predict_only:
                done_before = finished_checkpoint(work, run, t) is not None
                print(f"training {run.name} test fold {t}", flush=True)
                try:
                    seconds = _run(train_command(data_root, run, args.config), train_env(work, run, t), log)
                    if not done_before and finished_checkpoint(work, run, t) is not None:
                        record_training_seconds(work, run, t, seconds)
                except subprocess.CalledProcessError as exc:  # e.g. another trainer holds the run: go on
                    print(f"{run.name} test fold {t}: train.sh exited with {exc.returncode} (see {log})", flush=True)
            checkpoint = finished_checkpoint(work, run, t)
            if checkpoint is None:
                print(f"{run.name} test fold {t}: no finished run in {weights_dir(work, run, t)}; left out", flush=True)
                continue
            found.setdefault(t, {})[run] = checkpoint
    return found


def ensemble_pairs(runs: list[Run]) -> list[tuple[Run, Run, str]]:
    """The two-model ensembles (``ENSEMBLES``) whose runs of one seed are both among ``runs``."""
    by_seed = {(r.recipe, r.seed): r for r in runs}
    return [(by_seed[(first, s)], by_seed[(second, s)], what) for first, second, what in ENSEMBLES
            for s in dict.fromkeys(r.seed for r in runs) if (first, s) in by_seed and (second, s) in by_seed]


def pair_name(first: Run, second: Run, what: str) -> str:
    return f"{first.name} + {second.name} ({what})"


def in_domain_rows(runs: list[Run], scores: dict[int, dict[Path, ModelScores]],
                   checkpoints: dict[int, dict[Run, Path]]) -> list[Row]:
    """Per run its fold models, each on its own test fold; per seed the pairs of ``ENSEMBLES``."""
    rows = [Row(run.name, {f"fold {t}": [scores[t][c[run]]] for t, c in checkpoints.items() if run in c})
            for run in runs]
    for first, second, what in ensemble_pairs(runs):
        rows.append(Row(pair_name(first, second, what),
                        {f"fold {t}": [scores[t][c[first]], scores[t][c[second]]]
                         for t, c in checkpoints.items() if first in c and second in c}))
    return rows


def cross_rows(runs: list[Run], cross: dict[Path, ModelScores],
               checkpoints: dict[int, dict[Run, Path]]) -> tuple[list[Row], dict[str, list[Row]]]:
    """Per run all its fold models as one ensemble (and each fold model alone, for the spread); the pairs
    of ``ENSEMBLES`` of a seed (all their fold models)."""
    def models(run: Run) -> list[ModelScores]:
        return [cross[c[run]] for _, c in sorted(checkpoints.items()) if run in c]

    rows = [Row(f"{run.name} (5-fold ensemble)" if len(models(run)) == N_FOLDS else
                f"{run.name} ({len(models(run))} fold model{'s' * (len(models(run)) > 1)})", {"cross": models(run)})
            for run in runs if models(run)]
    singles = {row.name: [Row(f"{m.checkpoint}", {"cross": [m]}) for m in row.models["cross"]] for row in rows}
    for first, second, what in ensemble_pairs(runs):
        if models(first) and models(second):
            rows.append(Row(f"{pair_name(first, second, what)}, all fold models",
                            {"cross": models(first) + models(second)}))
    return rows, singles


def cross_table(rows: list[Row], singles: dict[str, list[Row]], videos: list[Video], options,
                bootstrap: Bootstrap) -> tuple[list[str], dict]:
    from core.metrics import auc

    lines = ["| row | videos (fake) | AUC | AP | log loss | log loss raw | single fold models: AUC mean ± sd (n) |",
             "|---|---|---|---|---|---|---|"]
    results = {}
    for row in rows:
        result = results[row.name] = evaluated(row, videos, options, bootstrap)
        s, raw = result["calibrated"]["overall"], result["raw"]["overall"]
        single = [auc([v.label for v in videos], [video_probabilities(r.models["cross"], v.name, options)[0]
                                                  for v in videos]) for r in singles.get(row.name, [])]
        lines.append(f"| {row.name} | {s['n_videos']} ({s['n_fake']}) | {cell(s, 'auc')} | "
                     f"{cell(s, 'average_precision')} | {cell(s, 'log_loss')} | {cell(raw, 'log_loss')} | "
                     f"{spread([a for a in single if a == a])} |")
    return lines, results


def timing_lines(work: Path, runs: list[Run], checkpoints: dict[int, dict[Run, Path]], groups: list[str],
                 prepared_s: dict[str, float]) -> list[str]:
    """The wall times: each run's training per fold (recorded by the bench, else from its files), each
    predictor call of each group (``calls.json``: the first call predicts, a rerun reads the cache)."""
    lines = ["| run | test folds | training wall s per fold: mean (min-max) | from |", "|---|---|---|---|"]
    for run in runs:
        folds = sorted(t for t, c in checkpoints.items() if run in c)
        timed = [training_seconds(work, run, t) for t in folds]
        seconds = [s for s, _ in timed if s is not None]
        shown = f"{np.mean(seconds):.0f} ({min(seconds):.0f}-{max(seconds):.0f})" if seconds else "-"
        lines.append(f"| {run.name} | {' '.join(map(str, folds))} | {shown} | "
                     f"{', '.join(dict.fromkeys(source for _, source in timed))} |")
    calls = [(g, call) for g in groups for call in prediction_calls(work, g)]
    if calls:
        lines += ["", "Prediction (each predictor call that filled the cache; 2D and 3D models of a call share "
                  "the decoding and the face detection):", ""]
        for group, call in calls:
            kinds = [k for _, k in call["models"]]
            lines.append(f"- {group}: {call['videos']} videos, {kinds.count('2d')} 2D + {kinds.count('3d')} 3D "
                         f"model(s) ({', '.join(m for m, _ in call['models'])}): {call['wall_s']:.0f} s "
                         f"({call['wall_s'] / max(call['videos'], 1):.1f} s per video)")
    if prepared_s:
        lines += ["", "Preprocessing this call: " + ", ".join(f"{k} {s:.0f} s" for k, s in prepared_s.items()) + "."]
    return lines


def describe(args, options, predict_s: dict[str, float], checkpoints: dict[int, dict[Run, Path]]) -> list[str]:
    runs = " ".join(f"{r.recipe}:{r.seed}" for r in args.runs)
    trained = sum(len(c) for c in checkpoints.values())
    configs = ", ".join(f"{recipe} `{run_config(Run(recipe, 0), args.config)}`"
                        for recipe in dict.fromkeys(r.recipe for r in args.runs))
    weights = ", ".join(f"{k} {w:g}" for k, w in options.family_weight_map.items())
    return [f"Command: `python bench/quality.py --work {args.work} --runs {runs} --test-folds "
            f"{' '.join(map(str, args.test_folds))} --bootstrap {args.bootstrap}{' --predict-only' * args.predict_only}"
            f"{f' --config {args.config}' if args.config else ''}` (configs: {configs}; seeds "
            f"{', '.join(str(s) for s in dict.fromkeys(r.seed for r in args.runs))}; bootstrap seed "
            f"{args.bootstrap_seed}).",
            f"Machine: {machine_description()}.",
            f"Models: {trained} finished runs (run x test fold); test fold t is validated on fold (t+1) % 5. "
            f"Predictor: the `default` preset ({options.frames_per_video} frames, `{options.strategy}` strategy, "
            f"`{options.aggregate}` video rule; 3D models: {options.clip_chunks} chunks per person; 2D and 3D "
            f"pooled per person by `{options.family_pool}` with weights {weights}), calibration "
            f"{options.calibration}. Prediction wall time this call: "
            + ", ".join(f"{g} {s:.0f} s" for g, s in predict_s.items()) + " (0 where the cache had every video).",
            ""]


def in_domain_section(rows: list[Row], runs: list[Run], videos: list[Video], options,
                      bootstrap: Bootstrap) -> tuple[list[str], dict]:
    results = {row.name: evaluated(row, videos, options, bootstrap) for row in rows if row.models}
    body = ["### Unseen FF++ identities, every video tested once (pooled over the test folds)", "",
            "Each video is scored by the model of its own test fold (never trained on its identity; the "
            "checkpoint picked on another fold). `log loss raw`: the same scores before calibration (the AUC "
            "and AP do not change with it). `+` rows: two models of one seed and fold, each calibrated first: "
            "`mixed sources` the real-fake and the self-blended 2D model averaged, `2D + 3D` the real-fake 2D "
            "and 3D model pooled per person by the family weights, then the video rule. [low, high]: 95% "
            "bootstrap interval, videos resampled within each label.", ""]
    body += main_table(results) + ["", "Per manipulation method (all real videos against that method's fakes):", ""]
    body += method_table(results)
    spread_lines = seed_spread(results, runs)
    if spread_lines:
        body += ["", "Spread over seeds (pooled numbers):", ""] + spread_lines
    return body, results


def predicted_groups(args, work: Path, data_root: Path, checkpoints: dict[int, dict[Run, Path]], options
                     ) -> tuple[dict[int, dict[Path, ModelScores]], list[Video], dict[str, float]]:
    """Each test fold's videos scored by that fold's models (cached); the videos and the wall times."""
    predict_s, scores, videos = {}, {}, []
    fold_of = fold_of_videos(data_root)
    for t, by_run in sorted(checkpoints.items()):
        mine = fold_videos(data_root, t, fold_of)
        start = time.perf_counter()
        scores[t] = group_scores(work, f"fold {t}", list(by_run.values()), mine, options)
        predict_s[f"fold {t}"] = time.perf_counter() - start
        videos += mine
    return scores, videos, predict_s


def cross_section(args, work: Path, checkpoints: dict[int, dict[Run, Path]], options, bootstrap: Bootstrap,
                  predict_s: dict[str, float]) -> tuple[list[str], dict]:
    """The cross-dataset clips scored by every model (cached), as each recipe's and each pair's ensembles."""
    clips = cross_videos(args.cross_dev, args.real_small) if args.cross else []
    if not clips or not checkpoints:
        return [], {}
    start = time.perf_counter()
    all_checkpoints = list(dict.fromkeys(c for by_run in checkpoints.values() for c in by_run.values()))
    cross = group_scores(work, "cross", all_checkpoints, clips, options)
    predict_s["cross"] = time.perf_counter() - start
    rows, singles = cross_rows(args.runs, cross, checkpoints)
    lines, results = cross_table(rows, singles, clips, options, bootstrap)
    body = ["", "### Across datasets: DFDC clips never trained on", "",
            f"`cross_dev` (14 DFDC clips) and the DFDC clips of `real_small` ({len(clips)} clips). Each recipe "
            "as the ensemble of its fold models (calibrated; the models of one kind averaged, a 2D and a 3D "
            "kind pooled per person 50:50); the last column: each fold model alone.", ""]
    return body + lines, results


def main(argv: list[str] | None = None) -> int:
    from prediction.options import resolve_options

    args = build_parser().parse_args(argv)
    args.runs = chosen_runs(args)
    if not (args.ffpp / PART / METADATA_NAME).is_file():
        print(f"skipped: no FF++ videos at {args.ffpp} (pass --ffpp)")
        return 0
    work = args.work.resolve()
    data_root, log = work / "data", work / "quality.log"
    prepared_s = {}
    if not args.predict_only:
        prepared_s = prepare(args, data_root, log)
    elif not (data_root / "folds.csv").is_file():
        print(f"error: --predict-only needs a preprocessed {data_root} (folds.csv); run without it first")
        return 2
    checkpoints = checkpoints_by_fold(args, work, data_root, log)
    options = resolve_options()
    bootstrap = Bootstrap(args.bootstrap, args.bootstrap_seed)
    scores, videos, predict_s = predicted_groups(args, work, data_root, checkpoints, options)
    body, results = in_domain_section(in_domain_rows(args.runs, scores, checkpoints), args.runs, videos, options,
                                      bootstrap)
    cross_body, cross_results = cross_section(args, work, checkpoints, options, bootstrap, predict_s)
    body += cross_body
    body += ["", "### Wall times", ""] + timing_lines(work, args.runs, checkpoints, list(predict_s), prepared_s)
    body = describe(args, options, predict_s, checkpoints) + PROTOCOL + [""] + body
    write_json_atomic(work / "quality_results.json", {**results, **{f"cross: {k}": r for k, r in cross_results.items()}})
    print("\n".join(body))
    if args.write_docs:
        write_section(args.write_docs, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
