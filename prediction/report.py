"""The HTML report of a folder prediction: histogram by true label, face-score strips and contact
sheets of the most wrong videos, fallbacks, models and settings."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from preprocessing.layout import atomic_path, write_text_atomic
from training.tools.metrics import video_log_loss


def _plot_histogram(path: Path, predictions, labels: dict[str, int] | None) -> None:
    import matplotlib.pyplot as plt

    bins = np.linspace(0, 1, 21)
    fig, ax = plt.subplots(figsize=(7, 4))
    if labels:
        for value, name, colour in ((0, "REAL", "tab:blue"), (1, "FAKE", "tab:red")):
            probs = [p.probability for p in predictions if labels.get(p.name) == value]
            ax.hist(probs, bins=bins, alpha=0.6, color=colour, label=f"{name} ({len(probs)})")
        unlabelled = [p.probability for p in predictions if p.name not in labels]
        if unlabelled:
            ax.hist(unlabelled, bins=bins, alpha=0.6, color="grey", label=f"no label ({len(unlabelled)})")
    else:
        ax.hist([p.probability for p in predictions], bins=bins, color="grey",
                label=f"all videos ({len(predictions)})")
    ax.set_xlabel("predicted probability of FAKE")
    ax.set_ylabel("videos")
    ax.set_xlim(0, 1)
    ax.legend()
    ax.set_title("Predictions by true label")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_strip(path: Path, pred, label: int | None) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    frames = pred.face_frame_indices
    for row, scores in enumerate(pred.face_scores):
        ax.scatter(frames, scores, s=18, alpha=0.7, label=f"model {row}" if len(pred.face_scores) > 1 else "face")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.axhline(pred.probability, color="black", linewidth=1, label=f"video {pred.probability:.3f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("face score")
    truth = {0: "REAL", 1: "FAKE"}.get(label, "?")
    ax.set_title(f"{pred.name} (true {truth})", fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _contact_sheet(path: Path, crops, scores, tile_px: int = 112, columns: int = 8) -> None:
    import cv2

    from preprocessing.faces import face_to_model_input

    tiles = []
    for i, crop in enumerate(crops):
        tile = np.ascontiguousarray(face_to_model_input(crop, tile_px))
        if scores is not None and i < len(scores):
            cv2.rectangle(tile, (0, tile_px - 18), (tile_px, tile_px), (0, 0, 0), -1)
            cv2.putText(tile, f"{scores[i]:.2f}", (4, tile_px - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.zeros((rows * tile_px, min(columns, len(tiles)) * tile_px, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px] = tile
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")


def evaluation_html(evaluation: dict) -> str:
    """The evaluation protocol's table (overall, per folder, per method) as an HTML section."""
    from prediction.evaluation import TABLE_COLUMNS, table_rows

    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in TABLE_COLUMNS)
    body = "".join("<tr><th>" + html.escape(name) + "</th>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                   + "</tr>" for name, cells in table_rows(evaluation))
    return (f"<h2>Evaluation</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th></th>{head}</tr>{body}</table>"
            "\n<p>Per method: that method's fakes against the real videos of the same folders. "
            "Face AUC: every scored face labelled with its video's label.</p>")


def write_report(report_dir: str | os.PathLike, predictions, labels: dict[str, int] | None,
                 summary: dict, submission_path: Path | None = None, top_k: int = 8,
                 metrics_path: Path | None = None) -> Path:
    """The HTML report; returns the path of its ``index.html``. The contact sheets show each shown
    prediction's ``face_crops`` (kept by ``run`` for the most wrong videos only)."""
    import matplotlib

    matplotlib.use("Agg")
    report_dir = Path(report_dir)
    (report_dir / "strips").mkdir(parents=True, exist_ok=True)
    (report_dir / "faces").mkdir(parents=True, exist_ok=True)
    _plot_histogram(report_dir / "histogram.png", predictions, labels)

    ranked = []
    if labels:
        ranked = sorted((p for p in predictions if p.name in labels and not p.fell_back),
                        key=lambda p: -video_log_loss(labels[p.name], p.probability))[:max(top_k, 0)]
    rows = []
    for pred in ranked:
        stem = pred.path.stem
        strip = Path("strips") / f"{stem}.png"
        sheet = Path("faces") / f"{stem}.png"
        _plot_strip(report_dir / strip, pred, labels.get(pred.name))
        if pred.face_crops:
            _contact_sheet(report_dir / sheet, pred.face_crops, pred.mean_face_scores)
        label = labels[pred.name]
        rows.append(
            f"<tr><td>{html.escape(pred.name)}</td><td>{'FAKE' if label else 'REAL'}</td>"
            f"<td>{pred.probability:.4f}</td><td>{video_log_loss(label, pred.probability):.3f}</td>"
            f"<td>{pred.n_faces}</td><td><a href=\"{strip.as_posix()}\"><img src=\"{strip.as_posix()}\" "
            f"height=\"160\"></a></td><td>"
            + (f"<a href=\"{sheet.as_posix()}\"><img src=\"{sheet.as_posix()}\" height=\"160\"></a>"
               if pred.face_crops else "no face") + "</td></tr>")

    metric_rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{value:.4f}</td></tr>" if isinstance(value, float)
        else f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
        for key, value in summary.items()
        if key not in ("fallback_videos", "fallbacks", "models", "settings", "evaluation", "partly_decoded_videos"))
    evaluation_section = evaluation_html(summary["evaluation"]) if summary.get("evaluation") else ""
    setup = html.escape(json.dumps({"models": summary.get("models"), "settings": summary.get("settings")},
                                   indent=1))
    fallback_rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(reason)}</td></tr>"
                            for name, reason in summary.get("fallback_videos", {}).items())
    links = ""
    if submission_path is not None:
        for target in (submission_path, metrics_path):
            if target is None:
                continue
            if target.exists():
                href = html.escape(Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix())
                links += f"<li><a href=\"{href}\">{html.escape(target.name)}</a></li>"
    wrong_section = (
        "<table border=\"1\" cellpadding=\"4\"><tr><th>video</th><th>true</th><th>prediction</th>"
        "<th>log loss</th><th>faces</th><th>face scores by frame</th><th>faces (score)</th></tr>"
        + "".join(rows) + "</table>") if rows else "<p>No labelled video with faces to show.</p>"
    fallbacks = summary.get("fallbacks", {})
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Prediction report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{text-align:left}}</style></head>
<body>
<h1>Prediction report</h1>
<ul>{links}</ul>
<h2>Scores</h2>
<table border="1" cellpadding="4">{metric_rows}</table>
{evaluation_section}
<h2>Predictions by true label</h2>
<a href="histogram.png"><img src="histogram.png" width="640"></a>
<h2>Most wrong videos</h2>
{wrong_section}
<h2>Fallbacks (predicted 0.5): {fallbacks.get('total', 0)}</h2>
<table border="1" cellpadding="4"><tr><th>video</th><th>reason</th></tr>{fallback_rows}</table>
<h2>Models and settings</h2>
<pre>{setup}</pre>
</body></html>
"""
    index = report_dir / "index.html"
    write_text_atomic(index, page)
    return index
