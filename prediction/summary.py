"""What a folder prediction records: its scores and fallbacks (``OUT.metrics.json``), its settings and
the context of the run (date, command line, code version, checkpoints) for the report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from core.metrics import DECISION_THRESHOLD, UNCERTAIN_BAND, VERDICTS, Bootstrap, verdict


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
            "checkpoints": [{"path": str(m.path), "family": m.family, "kind": kind, "encoder": m.encoder,
                             "input_size": m.input_size, "frames_per_clip": m.input_spec.frames_per_clip,
                             "epoch": m.epoch, "validation_score": m.validation_score}
                            for m, kind in zip(predictor.models, predictor.model_kinds)]}


def families_record(predictor) -> dict:
    """Which families made the scores: per kind ("2d", "3d") its checkpoints with their family, and the
    weights and pooling that combined the kinds per person (``prediction.families``)."""
    kinds: dict[str, list[dict]] = {}
    for m, kind in zip(predictor.models, predictor.model_kinds):
        kinds.setdefault(kind, []).append({"path": str(m.path), "family": m.family})
    return {"kinds": kinds, "families": sorted({m.family for m in predictor.models}),
            "weights": {kind: predictor.family_weights.get(kind, 0.0) for kind in kinds},
            "pool": predictor.options.family_pool}


def scored_videos(predictions, labels: dict[str, int], folder_of: dict[str, str], entries: dict,
                  raw: bool = False) -> list:
    """The labelled predictions as the evaluation protocol takes them (``raw``: the uncalibrated scores)."""
    from prediction.evaluation import ScoredVideo

    return [ScoredVideo(p.name, folder_of.get(p.name, p.path.parent.name), labels[p.name],
                        p.uncalibrated_probability if raw else p.probability,
                        p.face_scores.mean(axis=0) if p.face_scores.size and p.face_scores.shape[0] else np.zeros(0),
                        getattr(entries.get(p.name), "method", None) if labels[p.name] else None,
                        getattr(entries.get(p.name), "dataset", None))
            for p in predictions if p.name in labels]


def verdict_counts(predictions) -> dict:
    """The decision rule (``core.metrics.verdict``) and how many videos got each verdict."""
    counts = Counter(verdict(p.probability) for p in predictions)
    return {"threshold": DECISION_THRESHOLD, "uncertain_band": list(UNCERTAIN_BAND),
            "counts": {v: counts.get(v, 0) for v in VERDICTS}}


def summarize(predictions, labels: dict[str, int] | None, folder_of: dict[str, str] | None = None,
              entries: dict | None = None, bootstrap: Bootstrap = Bootstrap()) -> dict:
    """Scores on the labelled videos (as the competition scored) with their confidence intervals
    (``ci``, made as ``bootstrap`` says), the evaluation protocol's breakdowns (``evaluation``: overall,
    per folder, per dataset, per manipulation method, reliability bins), the verdicts (``decision``) and
    the fallback counts. When some prediction was calibrated, ``uncalibrated`` holds the same evaluation
    of the raw scores (the log loss before calibration; the AUC is the same when one model is used).
    ``folder_of`` and ``entries`` (the dataset readers' entries: method, dataset) are keyed by the
    prediction's name."""
    from prediction.evaluation import evaluate

    kinds = Counter(p.fallback_kind for p in predictions if p.fell_back)
    summary: dict = {
        "n_videos": len(predictions),
        "fallbacks": {"total": sum(kinds.values()),
                      **{k: kinds.get(k, 0) for k in ("unreadable", "no_face", "no_clip", "error")}},
        "fallback_videos": {p.name: p.fallback_reason for p in predictions if p.fell_back},
        "partly_decoded_videos": {p.name: p.decode_warning for p in predictions if p.decode_warning},
        "decision": verdict_counts(predictions),
    }
    if labels:
        labelled = [p for p in predictions if p.name in labels]
        folder_of, entries = folder_of or {}, entries or {}
        evaluation = evaluate(scored_videos(labelled, labels, folder_of, entries), bootstrap)
        scores = dict(evaluation["overall"])  # the top-level scores are the overall row, computed once
        scores["n_labelled"] = scores.pop("n_videos")
        summary.update(scores)
        summary["n_unlabelled"] = len(predictions) - len(labelled)
        summary["evaluation"] = evaluation
        if any(p.raw_probability is not None for p in labelled):
            summary["uncalibrated"] = evaluate(scored_videos(labelled, labels, folder_of, entries, raw=True),
                                               bootstrap)
    return summary


def settings_record(preset: str, predictor, labels_path: Path | None) -> dict:
    """How the results were made: the preset, every resolved option (device and precision as used)."""
    return {"preset": preset, **predictor.options.as_dict(), "device": predictor.device,
            "precision": str(predictor.dtype).replace("torch.", ""),
            "labels": str(labels_path) if labels_path is not None else None}


def json_safe(value):
    """NaN (e.g. AUC with one class) as null, so that the file is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
