"""The evaluation protocol: the metrics papers report, overall and per folder and manipulation method.

Video level (one probability per video): ROC AUC, average precision, equal error rate, log loss
(all videos, fakes only, reals only, and the mean of the two: the DFDC winner's model-selection
score), accuracy at 0.5. Face level: ROC AUC of every scored face, each labelled with its video's
label. Breakdowns: per folder (when several are scored in one call), per dataset (when videos of
several datasets are) and per manipulation method, where a method's rows are its fakes and the real
videos of the folders that hold them, or, for a folder that holds no real video (FF++ keeps each
method in a folder of its own), the real videos of the same dataset (FF++'s protocol: each method
against the same reals). A video's dataset and a fake's method are the ones its dataset's reader
gives (``datasets``: FF++'s method folder, a DFDC ``metadata.json``'s ``method``, else the FF++ suffix of
the file name, ``033_097_DF.mp4`` -> ``DF``).

Every number comes from scikit-learn (``core.metrics``) and is NaN (null in JSON) when the
rows in scope hold a single class. Every AUC, AP and log loss of a row gets a bootstrap confidence
interval (``ci``: ``{metric: [low, high]}``; the videos resampled, stratified by label, seeded:
``core.metrics.Bootstrap``, recorded under ``bootstrap``); the face AUC's resamples take the faces of
the resampled videos. A row where a class has fewer than 2 videos has ``ci`` null ("n too small").
``reliability``: the labelled videos in probability bins (``core.metrics.reliability_bins``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.metrics import (
    Bootstrap,
    auc,
    bootstrap_intervals,
    reliability_bins,
    video_score_statistics,
    video_scores,
    weighted_auc,
)
from datasets.readers import METHOD_NAMES

# the columns of the printed table, in order: (key in the metrics, heading); the counts stand next to the
# numbers computed on them
TABLE_COLUMNS = (("n_videos", "videos"), ("n_fake", "fake"), ("n_real", "real"), ("auc", "AUC"),
                 ("average_precision", "AP"), ("eer", "EER"), ("log_loss", "LL"), ("fake_log_loss", "LL fake"),
                 ("real_log_loss", "LL real"), ("balanced_log_loss", "LL bal"), ("accuracy", "acc@0.5"),
                 ("n_faces", "faces"), ("face_auc", "face AUC"))
# the numbers that get a confidence interval
INTERVAL_METRICS = ("auc", "average_precision", "log_loss", "fake_log_loss", "real_log_loss", "balanced_log_loss",
                    "face_auc")
N_TOO_SMALL = "n too small"


def folder_keys(folders: list[Path]) -> dict[Path, str]:
    """A short unique name per folder: its last path component, with more parents where two would clash
    (``a/x`` and ``b/x`` -> ``a/x``, ``b/x``)."""
    parts = {f: f.resolve().parts for f in folders}
    if len(set(parts.values())) < len(folders):
        raise InputError("--test-dir names the same folder twice; pass each folder once")
    for depth in range(1, max(len(p) for p in parts.values()) + 1):
        keys = {f: "/".join(p[-depth:]) for f, p in parts.items()}
        if len(set(keys.values())) == len(folders):
            return keys
    raise AssertionError("distinct resolved paths always have distinct suffixes")


@dataclass
class ScoredVideo:
    """One labelled video's answer, as the protocol needs it."""

    name: str
    folder: str
    label: int  # 1 FAKE, 0 REAL
    probability: float
    face_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per face, mean over models
    method: str | None = None  # fakes only
    dataset: str | None = None  # the reader that gave its label


def _faces(videos: Sequence[ScoredVideo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every scored face: (its label, its score, the index of its video)."""
    if not videos:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
    owner = np.concatenate([np.full(v.face_scores.size, i) for i, v in enumerate(videos)]).astype(int)
    return (np.array([v.label for v in videos], dtype=np.float64)[owner],
            np.concatenate([v.face_scores.ravel() for v in videos]), owner)


def _intervals(videos: Sequence[ScoredVideo], bootstrap: Bootstrap) -> dict | None:
    """The confidence interval of each number in ``INTERVAL_METRICS`` (None: a class has too few videos)."""
    y = np.array([v.label for v in videos], dtype=np.float64)
    video_statistics = video_score_statistics(y, [v.probability for v in videos])
    face_y, face_p, owner = _faces(videos)

    def statistics(counts: np.ndarray) -> dict[str, np.ndarray]:
        # a video drawn k times brings its faces k times
        return {**video_statistics(counts), "face_auc": weighted_auc(face_y, face_p, counts[:, owner])}

    return bootstrap_intervals(y, statistics, bootstrap)


def _scores(videos: Sequence[ScoredVideo], bootstrap: Bootstrap) -> dict:
    y = [v.label for v in videos]
    scores = video_scores(y, [v.probability for v in videos])
    face_y, face_p, _ = _faces(videos)
    scores["face_auc"] = auc(face_y, face_p)
    scores["n_faces"] = int(face_p.size)
    scores["n_fake"] = int(sum(y))
    scores["n_real"] = len(y) - int(sum(y))
    if bootstrap.resamples:
        scores["ci"] = _intervals(videos, bootstrap)
    return scores


def _method_reals(videos: list[ScoredVideo], fakes: list[ScoredVideo]) -> list[ScoredVideo]:
    """The real videos a method's fakes are scored against: those of the fakes' folders; for a folder that
    holds none, those of the fakes' dataset."""
    reals = [v for v in videos if v.label == 0]
    folders_with_reals = {v.folder for v in reals}
    folders = {v.folder for v in fakes if v.folder in folders_with_reals}
    datasets = {v.dataset for v in fakes if v.folder not in folders_with_reals and v.dataset}
    return [v for v in reals if v.folder in folders or v.dataset in datasets]


def evaluate(videos: Iterable[ScoredVideo], bootstrap: Bootstrap = Bootstrap()) -> dict:
    """``{"overall": metrics, "per_folder": {folder: metrics}, "per_dataset": {dataset: metrics},
    "per_method": {method: metrics}, "bootstrap": how the intervals were made, "reliability": bins of the
    overall videos}`` (a breakdown with one member is empty)."""
    videos = list(videos)
    folders = sorted({v.folder for v in videos})
    datasets = sorted({v.dataset for v in videos if v.dataset})
    result = {"overall": _scores(videos, bootstrap),
              "per_folder": {f: _scores([v for v in videos if v.folder == f], bootstrap) for f in folders}
              if len(folders) > 1 else {},
              "per_dataset": {d: _scores([v for v in videos if v.dataset == d], bootstrap) for d in datasets}
              if len(datasets) > 1 else {},
              "per_method": {}}
    methods = sorted({v.method for v in videos if v.label == 1 and v.method})
    for method in methods:
        fakes = [v for v in videos if v.label == 1 and v.method == method]
        result["per_method"][method] = _scores(_method_reals(videos, fakes) + fakes, bootstrap)
    result["bootstrap"] = bootstrap.record()
    result["reliability"] = reliability_bins([v.label for v in videos], [v.probability for v in videos])
    return result


def _cell(value) -> str:
    if isinstance(value, int):
        return str(value)
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.3f}"


def interval_text(scores: dict, key: str) -> str:
    """`` [low, high]`` of ``key`` in a row, `` (n too small)`` where a class has too few videos for one,
    empty where the row has no intervals (none asked for) or the number is not defined."""
    value = scores.get(key)
    if key not in INTERVAL_METRICS or "ci" not in scores or value is None or not np.isfinite(value):
        return ""
    if scores["ci"] is None:
        return f" ({N_TOO_SMALL})"
    interval = scores["ci"].get(key)
    return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval is not None else ""


def table_rows(evaluation: dict) -> list[tuple[str, list[str]]]:
    """(row name, formatted cells in ``TABLE_COLUMNS`` order, each number with its confidence interval):
    overall, each folder, dataset and method."""
    rows = [("all", evaluation["overall"])]
    rows += [(f"folder {name}", scores) for name, scores in evaluation["per_folder"].items()]
    rows += [(f"dataset {name}", scores) for name, scores in evaluation.get("per_dataset", {}).items()]
    rows += [(f"method {name}" + (f" ({METHOD_NAMES[name]})" if name in METHOD_NAMES else ""), scores)
             for name, scores in evaluation["per_method"].items()]
    return [(name, [_cell(scores.get(k)) + interval_text(scores, k) for k, _ in TABLE_COLUMNS])
            for name, scores in rows]


def interval_note(evaluation: dict) -> str:
    """How the intervals were made, in one sentence (empty without intervals)."""
    record = evaluation.get("bootstrap")
    if not record or not record["resamples"]:
        return ""
    return (f"[low, high]: {record['level']:.0%} confidence interval, {record['resamples']} bootstrap resamples of "
            f"the videos stratified by label (seed {record['seed']}); {N_TOO_SMALL}: a class has fewer than "
            f"{record['min_videos_per_class']} videos.")


def format_table(evaluation: dict) -> str:
    """The evaluation as one Markdown table: overall, each folder, dataset and method; then how the
    intervals were made."""
    lines = ["| | " + " | ".join(h for _, h in TABLE_COLUMNS) + " |",
             "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in table_rows(evaluation)]
    note = interval_note(evaluation)
    return "\n".join(lines + ([note] if note else []))
