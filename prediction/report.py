"""The HTML report of a folder prediction.

``index.html``: the run's context (date, command line, code version, checkpoints with their epoch and
validation score, options), the scores with their confidence intervals and counts and the evaluation
table, the prediction histogram by true label, the reliability diagram of the labelled videos (predicted
probability against the observed fraction of fakes, per bin, with counts), the videos with the highest
log loss, a sortable table of ALL videos (score, label, log loss, faces,
persons, fallback, seconds), the fallbacks, and a note on what the aggregation did. Every row links to
the video's page under ``videos/``: its face scores by frame coloured by person, per person a contact
sheet of the scored crops with the detector probability and the face score on each, Grad-CAM heatmaps
of the most fake faces with ``--explain``, and in words why the video score is what it is.

``ReportWriter.add(prediction)`` writes a video's page and images as soon as the prediction arrives,
so the crops of a video are held only while it is written (a run over thousands of videos keeps no
crops); ``finish`` writes ``index.html`` last.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import atomic_path, write_text_atomic
from core.metrics import DECISION_THRESHOLD, UNCERTAIN_BAND, verdict, video_log_loss
from prediction.explain import write_heatmaps, write_png

PERSON_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")
MAX_SHEET_FACES = 32  # faces per person in a contact sheet (evenly spaced over the track when more)


def _esc(value) -> str:
    return html.escape(str(value))


PAGE_STEM_MAX_CHARS = 120  # a page's stem, so that "<stem>.html" stays far below a file name's 255 bytes


def page_slug(name: str, taken: set[str]) -> str:
    """A safe, unique stem for a video's page (``folder/a b.mp4`` -> ``folder__a_b``): letters, digits,
    ``_`` and ``-`` only (never a dot or a separator), at most ``PAGE_STEM_MAX_CHARS``, and unique in
    ``taken`` ignoring case (a case-insensitive file system would merge ``A`` and ``a``). The stem is added
    to ``taken``, in lower case."""
    from prediction.predictor import VIDEO_SUFFIXES

    base, dot, suffix = name.rpartition(".")
    if dot and base and f".{suffix.lower()}" in VIDEO_SUFFIXES:
        name = base
    # no dot at all: no "..", no hidden file, and no stem ending in ".html" whose image folder would be
    # another video's page
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name.replace("/", "__").replace("\\", "__"))
    stem = stem[:PAGE_STEM_MAX_CHARS] or "video"
    slug, n = stem, 1
    while slug.lower() in taken:
        n += 1
        slug = f"{stem}-{n}"
    taken.add(slug.lower())
    return slug


def _score_text(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _caption(tile: np.ndarray, lines: list[str]) -> None:
    import cv2

    size = tile.shape[0]
    band = 15 * len(lines) + 3
    cv2.rectangle(tile, (0, size - band), (size, size), (0, 0, 0), -1)
    for i, text in enumerate(lines):
        cv2.putText(tile, text, (3, size - band + 13 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)


def contact_sheet(crops, captions: list[list[str]], tile_px: int = 112, columns: int = 8) -> np.ndarray:
    """Crops (RGB, any shape) as square tiles with caption lines at the bottom of each; RGB uint8."""
    from core.geometry import face_to_model_input

    tiles = []
    for crop, lines in zip(crops, captions):
        tile = np.ascontiguousarray(face_to_model_input(crop, tile_px))
        _caption(tile, lines)
        tiles.append(tile)
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.zeros((max(rows, 1) * tile_px, max(min(columns, len(tiles)), 1) * tile_px, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px] = tile
    return sheet


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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def person_score_text(pred, person: int) -> str:
    """A person's pooled score and, with several kinds of model, each kind's: ``0.6100 (2d 0.5500, 3d 0.6700)``."""
    text = _score_text(pred.person_scores[person])
    if len(pred.family_person_scores) > 1:
        text += " (" + ", ".join(f"{kind} {_score_text(scores[person])}"
                                 for kind, scores in pred.family_person_scores.items()) + ")"
    return text


def _plot_strip(path: Path, pred, label: int | None) -> None:
    """Face scores (mean over the image models) by frame, one colour per person, dropped tracks as grey x;
    the clip models' chunk scores as bars over the frames each chunk spans."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    scores = pred.mean_face_scores
    frames = pred.face_frame_indices
    for person in range(pred.n_persons):
        chosen = pred.face_persons == person
        colour = PERSON_COLOURS[person % len(PERSON_COLOURS)]
        ax.scatter(frames[chosen], scores[chosen], s=18, alpha=0.8, color=colour,
                   label=f"person {person} ({_score_text(pred.person_scores[person], 2)})")
        for chunk in (c for c in pred.chunks if c.person == person):
            ax.plot(chunk.frames, [chunk.score, chunk.score], color=colour, linewidth=4, alpha=0.45)
    dropped = pred.face_persons == -1
    if dropped.any():
        ax.scatter(frames[dropped], scores[dropped], s=22, marker="x", color="grey", label="dropped track")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.axhline(pred.probability, color="black", linewidth=1, label=f"video {pred.probability:.3f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("face score")
    truth = {0: "REAL", 1: "FAKE"}.get(label, "?")
    ax.set_title(f"{pred.name} (true {truth})", fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def evaluation_html(evaluation: dict) -> str:
    """The evaluation protocol's table (overall, per folder, per method) as an HTML section."""
    from prediction.evaluation import TABLE_COLUMNS, interval_note, table_rows

    head = "".join(f"<th>{_esc(h)}</th>" for _, h in TABLE_COLUMNS)
    body = "".join("<tr><th>" + _esc(name) + "</th>" + "".join(f"<td>{_esc(c)}</td>" for c in cells)
                   + "</tr>" for name, cells in table_rows(evaluation))
    note = interval_note(evaluation)
    return (f"<h2>Evaluation</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th></th>{head}</tr>{body}</table>"
            "\n<p>Per method: that method's fakes against the real videos of the same folders. "
            "Face AUC: every scored face labelled with its video's label." + (f" {_esc(note)}" if note else "")
            + "</p>")


def _plot_reliability(path: Path, bins: list[dict]) -> None:
    """Mean predicted probability against the observed fraction of fakes, one point per non-empty bin
    (its size growing with its count, the count written next to it), and the diagonal of a calibrated
    model."""
    import matplotlib.pyplot as plt

    filled = [b for b in bins if b["n_videos"]]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    x = [b["mean_prediction"] for b in filled]
    y = [b["fraction_fake"] for b in filled]
    ax.plot(x, y, color="tab:red", linewidth=1)
    ax.scatter(x, y, s=[20 + 8 * b["n_videos"] ** 0.5 for b in filled], color="tab:red", zorder=3,
               label="videos in a bin")
    for b in filled:
        ax.annotate(f"n={b['n_videos']}", (b["mean_prediction"], b["fraction_fake"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean predicted probability of FAKE")
    ax.set_ylabel("observed fraction FAKE")
    ax.set_title(f"Reliability ({sum(b['n_videos'] for b in bins)} labelled videos)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _reliability_html(bins: list[dict]) -> str:
    """The reliability diagram and its bins as a table."""
    rows = "".join(
        f"<tr><td>{b['low']:.1f}-{b['high']:.1f}</td><td>{b['n_videos']}</td><td>"
        + (f"{b['mean_prediction']:.3f}</td><td>{b['fraction_fake']:.3f}" if b["n_videos"] else "-</td><td>-")
        + "</td></tr>" for b in bins)
    return ("<p>The labelled videos in bins of predicted probability: for a calibrated model the points lie on "
            "the diagonal (of the videos scored about 0.8, about 80% are fake). A bin of a few videos says "
            "little: its count is next to it.</p>\n<a href=\"reliability.png\"><img src=\"reliability.png\" "
            "width=\"450\"></a>\n<table border=\"1\"><tr><th>predicted</th><th>videos</th><th>mean predicted</th>"
            f"<th>fraction fake</th></tr>{rows}</table>")


def aggregation_note(options) -> str:
    """What the aggregation did, for the report (why a video's score is not the mean of its faces): the
    video rule's paragraph with the strategy's rule in words (both from ``prediction.aggregation``)."""
    from prediction.aggregation import VIDEO_RULES

    return VIDEO_RULES.get(options.aggregate).report_note(options)


@dataclass
class _Row:
    name: str
    slug: str
    probability: float
    label: int | None
    n_faces: int
    n_persons: int
    fallback: str | None  # the kind ("unreadable", "no_face", "no_clip", "error")
    fallback_reason: str | None
    seconds: float
    strip: str | None  # relative path of the strip image


SORT_SCRIPT = """<script>
function sortTable(table, column, numeric) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const asc = table.dataset.sortColumn == column ? table.dataset.sortAsc != "true" : true;
  rows.sort((a, b) => {
    const x = a.cells[column].dataset.value ?? a.cells[column].textContent;
    const y = b.cells[column].dataset.value ?? b.cells[column].textContent;
    const d = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
    return asc ? d : -d;
  });
  rows.forEach(r => body.appendChild(r));
  table.dataset.sortColumn = column; table.dataset.sortAsc = asc;
}
document.querySelectorAll("table.sortable th").forEach((th, i) => {
  th.style.cursor = "pointer"; th.title = "click to sort";
  th.addEventListener("click", () => sortTable(th.closest("table"), i, th.dataset.numeric == "1"));
});
// index.html#sort=KEY or #sort=-KEY (descending) opens the table sorted, e.g. #sort=-log_loss
const wanted = /^#sort=(-?)([a-z_]+)$/.exec(location.hash);
if (wanted) {
  const th = document.querySelector(`table.sortable th[data-key="${wanted[2]}"]`);
  if (th) { th.click(); if (wanted[1]) th.click(); }
}
</script>"""

STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px} td,th{text-align:left;padding:3px 8px} "
         "table{border-collapse:collapse} tr:nth-child(even){background:#f4f4f4} th{background:#e8e8e8} "
         ".wrong{color:#b00} img{border:1px solid #ccc}")


class ReportWriter:
    """Writes the report as predictions arrive (``add``), ``index.html`` at the end (``finish``).

    ``options``: the predictor's options (for the aggregation note)."""

    def __init__(self, report_dir: str | os.PathLike, labels: dict[str, int] | None, options, top_k: int = 8):
        import matplotlib

        matplotlib.use("Agg")
        self.dir = Path(report_dir)
        (self.dir / "videos").mkdir(parents=True, exist_ok=True)
        self.labels = labels or {}
        self.options = options
        self.top_k = top_k
        self.rows: list[_Row] = []
        self._slugs: set[str] = set()

    # -- one video --
    def add(self, pred, heatmaps: dict | None = None) -> None:
        """Write the video's page now (``heatmaps``: ``prediction.explain.explain_prediction``'s answer)."""
        slug = self._page_slug(pred.name)
        label = self.labels.get(pred.name)
        folder = self.dir / "videos" / slug
        parts = [f"<h1>{_esc(pred.name)}</h1>", "<p><a href=\"../index.html\">back to the report</a></p>"]
        facts = [("score (probability of FAKE)", f"{pred.probability:.4f}"), ("verdict", verdict(pred.probability)),
                 ("true label", {0: "REAL", 1: "FAKE"}.get(label, "not known"))]
        if label is not None:
            facts.append(("log loss", f"{video_log_loss(label, pred.probability):.4f}"))
        facts += [("faces", pred.n_faces), ("persons", pred.n_persons), ("sampled frames", len(pred.frame_indices)),
                  ("seconds", f"{sum(pred.timings_s.values()):.2f} ("
                   + ", ".join(f"{k} {v:.2f}" for k, v in pred.timings_s.items()) + ")")]
        if pred.fell_back:
            facts.append(("fallback (0.5)", pred.fallback_reason))
        if pred.decode_warning:
            facts.append(("decoding", pred.decode_warning))
        parts.append("<table>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in facts)
                     + "</table>")
        strip = None
        if not pred.fell_back:
            parts.append(f"<h2>Why this score</h2>{self._why(pred)}")
            strip_path = folder / "scores.png"
            strip_path.parent.mkdir(parents=True, exist_ok=True)
            _plot_strip(strip_path, pred, label)
            strip = f"videos/{slug}/scores.png"
            parts.append("<h2>Face scores by frame</h2><img src=\"" + _esc(f"{slug}/scores.png") + "\" width=\"700\">")
            written = write_heatmaps(folder, pred, heatmaps) if heatmaps else {}
            for person in [*range(pred.n_persons), -1]:
                parts.append(self._person_section(pred, person, folder, slug, written.get(person, [])))
        write_text_atomic(self.dir / "videos" / f"{slug}.html", self._page(pred.name, "\n".join(parts)))
        self.rows.append(_Row(pred.name, slug, float(pred.probability), label, pred.n_faces, pred.n_persons,
                              pred.fallback_kind, pred.fallback_reason, float(sum(pred.timings_s.values())), strip))

    def _page_slug(self, name: str) -> str:
        """A slug whose page and image folder resolve inside ``videos/`` (a link left there by someone else,
        pointing elsewhere, is passed over rather than written through)."""
        videos = (self.dir / "videos").resolve()
        while True:
            slug = page_slug(name, self._slugs)
            targets = (self.dir / "videos" / slug, self.dir / "videos" / f"{slug}.html")
            if all(t.resolve().parent == videos for t in targets):
                return slug

    def _why(self, pred) -> str:
        from prediction.aggregation import VIDEO_RULES, describe_strategy

        scores = pred.mean_face_scores
        faces_scored = pred.face_scores.shape[0] > 0
        lines = []
        for person in range(pred.n_persons):
            mine = scores[pred.face_persons == person]
            chunks = sum(1 for c in pred.chunks if c.person == person)
            how = describe_strategy(mine, self.options.strategy) if faces_scored else "scored by the clip models only"
            lines.append(f"person {person}: {mine.size} faces" + (f", {chunks} clip chunk scores" if chunks else "")
                         + f", score {person_score_text(pred, person)}; {how}")
        dropped = int(np.count_nonzero(pred.face_persons == -1))
        if dropped:
            lines.append(f"{dropped} face(s) in short tracks were dropped as likely detector false positives "
                         f"(shown at the end)")
        pooled = (f"pooled over all {scores.size} faces: {pred.pooled_probability:.4f}"
                  + (f"; {describe_strategy(scores, self.options.strategy)}" if faces_scored else ""))
        head = VIDEO_RULES.get(pred.aggregate).explain(pred.probability, pooled, pred.per_person_probability)
        if len(pred.model_probabilities) > 1:
            head += (f" Models ({self.options.combine}): "
                     + ", ".join(_score_text(p) for p in pred.model_probabilities) + " (pooled, per model).")
        if len(pred.family_probabilities) > 1:
            head += (f" Families pooled per person by the {self.options.family_pool} with weights "
                     f"{self.options.family_weights}; pooled over the video: "
                     + ", ".join(f"{k} {_score_text(v)}" for k, v in pred.family_probabilities.items()) + ".")
        if pred.raw_probability is not None:
            head += (" Each model's score (per video and per person) went through its checkpoint's temperature "
                     f"(calibration); without it the video would score {pred.raw_probability:.4f}.")
        return f"<p>{_esc(head)}</p><ul>" + "".join(f"<li>{_esc(line)}</li>" for line in lines) + "</ul>"

    def _person_section(self, pred, person: int, folder: Path, slug: str, heatmaps) -> str:
        faces = np.flatnonzero(pred.face_persons == person)
        if faces.size == 0:
            return ""
        title = (f"Person {person}: score {person_score_text(pred, person)}, {faces.size} faces" if person >= 0
                 else f"Dropped short tracks: {faces.size} faces (not in the score)")
        section = [f"<h2>{_esc(title)}</h2>"]
        if pred.face_crops:
            shown = faces if faces.size <= MAX_SHEET_FACES else faces[np.linspace(0, faces.size - 1,
                                                                                  MAX_SHEET_FACES).round().astype(int)]
            scores = pred.mean_face_scores
            captions = [[f"f{int(pred.face_frame_indices[i])}" + ("" if np.isnan(scores[i]) else f" s {scores[i]:.2f}"),
                         f"det {pred.face_boxes[i, 4]:.3f}"]
                        for i in shown]
            name = f"person{person}.png" if person >= 0 else "dropped.png"
            write_png(folder / name, contact_sheet([pred.face_crops[i] for i in shown], captions))
            section.append(f"<p>Scored crops (frame, face score s, detector probability det):</p>"
                           f"<img src=\"{_esc(slug)}/{name}\">")
        if heatmaps:
            images = "".join(
                f"<figure style=\"display:inline-block;margin:4px\"><img src=\"{_esc(slug)}/{_esc(name)}\" "
                f"height=\"160\"><figcaption>frame {int(pred.face_frame_indices[i])}, score "
                f"{pred.mean_face_scores[i]:.2f}</figcaption></figure>" for i, name in heatmaps)
            section.append("<p>Grad-CAM of this person's most fake faces (red: the regions that pushed the score "
                           "towards FAKE; an all-blue map: no region did):</p>" + images)
        return "\n".join(section)

    # -- the index --
    def _page(self, title: str, body: str, script: str = "") -> str:
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
                f"<style>{STYLE}</style></head>\n<body>\n{body}\n{script}\n</body></html>\n")

    def finish(self, predictions, summary: dict, context: dict, links: list[Path] = ()) -> Path:
        """Write ``index.html`` (and its histogram) from every video added; returns its path."""
        _plot_histogram(self.dir / "histogram.png", predictions, self.labels)
        reliability_section = self._reliability_section(predictions)
        link_items = "".join(
            f"<li><a href=\"{_esc(Path(os.path.relpath(t.resolve(), self.dir.resolve())).as_posix())}\">"
            f"{_esc(t.name)}</a></li>" for t in links if t is not None and t.exists())
        evaluation_section = evaluation_html(summary["evaluation"]) if summary.get("evaluation") else ""
        fallbacks = summary.get("fallbacks", {})
        fallback_rows = "".join(f"<tr><td>{_esc(name)}</td><td>{_esc(reason)}</td></tr>"
                                for name, reason in summary.get("fallback_videos", {}).items())
        setup = _esc(json.dumps({"models": summary.get("models"), "calibration": summary.get("calibration"),
                                 "settings": summary.get("settings")}, indent=1))
        body = f"""<h1>Prediction report</h1>
<ul>{link_items}</ul>
{_context_html(context)}
{evaluation_section}
{calibration_html(summary)}
<h2>All videos ({len(self.rows)})</h2>
{aggregation_note(self.options)}
<p>Click a column heading to sort (a link to <code>index.html#sort=-log_loss</code> opens it sorted); a red
score is on the wrong side of {DECISION_THRESHOLD:g}. {_esc(verdict_note())}</p>
{_videos_table_html(self.rows)}
<h2>Predictions by true label</h2>
<a href="histogram.png"><img src="histogram.png" width="640"></a>
{reliability_section}
<h2>Highest log loss</h2>
{_worst_html(self.rows, self.top_k)}
<h2>Fallbacks (predicted 0.5): {fallbacks.get('total', 0)}</h2>
<table border="1"><tr><th>video</th><th>reason</th></tr>{fallback_rows}</table>
<h2>All scores</h2>
<table border="1"><tr><th></th><th>value [95% interval]</th><th>computed on</th></tr>{_scores_html(summary)}</table>
<h2>Models and settings</h2>
<pre>{setup}</pre>"""
        index = self.dir / "index.html"
        write_text_atomic(index, self._page("Prediction report", body, SORT_SCRIPT))
        return index

    def _reliability_section(self, predictions) -> str:
        """The reliability diagram of the labelled videos (nothing without labels)."""
        from core.metrics import reliability_bins

        labelled = [p for p in predictions if p.name in self.labels]
        if not labelled:
            return ""
        bins = reliability_bins([self.labels[p.name] for p in labelled], [p.probability for p in labelled])
        _plot_reliability(self.dir / "reliability.png", bins)
        return "<h2>Reliability</h2>\n" + _reliability_html(bins)


def _context_html(context: dict) -> str:
    """The run's date, command line and code version, and its checkpoints."""
    ctx_rows = [("date", context.get("date")), ("command line", context.get("command")),
                ("code version", context.get("code_version"))]
    ctx = "".join(f"<tr><th>{_esc(k)}</th><td><code>{_esc(v)}</code></td></tr>" for k, v in ctx_rows)
    ckpt_rows = "".join(
        f"<tr><td>{_esc(c['path'])}</td><td>{_esc(c.get('family', '-'))} ({_esc(c.get('kind', '-'))})</td>"
        f"<td>{_esc(c['encoder'])}</td><td>{c['input_size']}</td>"
        f"<td>{_esc(c['epoch'] if c['epoch'] is not None else '-')}</td>"
        f"<td>{_score_text(c['validation_score'])}</td></tr>"
        for c in context.get("checkpoints", []))
    return f"""<h2>Run</h2>
<table>{ctx}</table>
<h3>Checkpoints</h3>
<table border="1"><tr><th>file</th><th>family (kind)</th><th>encoder</th><th>input px</th><th>epoch</th><th>validation score
(balanced log loss of its best epoch)</th></tr>{ckpt_rows}</table>"""


def _computed_on(summary: dict, key: str) -> str:
    """The count a top-level number was computed on (empty for the counts and the timing)."""
    if key in ("fake_log_loss",):
        return f"{summary.get('n_fake')} fake videos"
    if key in ("real_log_loss",):
        return f"{summary.get('n_real')} real videos"
    if key == "face_auc":
        return f"{summary.get('n_faces')} faces"
    if key in ("log_loss", "balanced_log_loss", "auc", "average_precision", "eer", "accuracy"):
        return f"{summary.get('n_labelled')} videos ({summary.get('n_fake')} fake)"
    return ""


def _scores_html(summary: dict) -> str:
    """Every top-level number of the summary, one row each, with its confidence interval and the count it
    was computed on."""
    from prediction.evaluation import interval_text

    return "".join(
        f"<tr><th>{_esc(key)}</th><td>{value:.4f}{_esc(interval_text(summary, key))}</td>"
        f"<td>{_esc(_computed_on(summary, key))}</td></tr>" if isinstance(value, float)
        else f"<tr><th>{_esc(key)}</th><td>{_esc(value)}</td><td></td></tr>"
        for key, value in summary.items()
        if key not in ("fallback_videos", "fallbacks", "models", "settings", "evaluation", "partly_decoded_videos",
                       "ci", "calibration", "uncalibrated", "decision"))


def verdict_note() -> str:
    """The decision rule in one sentence (``core.metrics``: the one place its numbers are set)."""
    low, high = UNCERTAIN_BAND
    return (f"Verdict: FAKE above {DECISION_THRESHOLD:g}, REAL at or below it, uncertain from {low:g} to {high:g} "
            f"(a calibrated score there means at least {low:.0%} of such videos are of the other class).")


def calibration_html(summary: dict) -> str:
    """Per model the temperature applied, and the log loss before and after it (empty when none was)."""
    record = summary.get("calibration") or {}
    rows = "".join(f"<tr><td>{_esc(m['path'])}</td><td>"
                   f"{_esc(format(m['temperature'], '.4f') if m['applied'] else 'none')}</td></tr>"
                   for m in record.get("models", []))
    if not rows:
        return ""
    text = f"<h2>Calibration ({_esc(record.get('option'))})</h2><table border=\"1\"><tr><th>model</th>" \
           f"<th>temperature applied</th></tr>{rows}</table>"
    raw = (summary.get("uncalibrated") or {}).get("overall")
    if raw and summary.get("log_loss") is not None:
        from prediction.evaluation import interval_text

        text += (f"<p>Log loss before calibration {raw['log_loss']:.4f}{_esc(interval_text(raw, 'log_loss'))}, "
                 f"after {summary['log_loss']:.4f}{_esc(interval_text(summary, 'log_loss'))}.</p>")
    return text


def _worst_html(rows: list[_Row], top_k: int) -> str:
    """The ``top_k`` labelled videos with the highest log loss, with their face-score strips."""
    labelled = [r for r in rows if r.label is not None and r.fallback is None]
    worst = sorted(labelled, key=lambda r: -video_log_loss(r.label, r.probability))[:max(top_k, 0)]
    worst_rows = "".join(
        f"<tr><td><a href=\"videos/{_esc(r.slug)}.html\">{_esc(r.name)}</a></td><td>{'FAKE' if r.label else 'REAL'}"
        f"</td><td>{r.probability:.4f}</td><td>{video_log_loss(r.label, r.probability):.3f}</td><td>"
        + (f"<a href=\"videos/{_esc(r.slug)}.html\"><img src=\"{_esc(r.strip)}\" height=\"150\"></a>" if r.strip
           else "") + "</td></tr>" for r in worst)
    return (f"<p>The {len(worst)} labelled videos the model got most wrong (a low log loss here means nothing "
            f"is badly wrong).</p><table border=\"1\"><tr><th>video</th><th>true</th><th>score</th>"
            f"<th>log loss</th><th>face scores by frame</th></tr>{worst_rows}</table>"
            if worst else "<p>No labelled video with faces.</p>")


def _cell(value, text=None, cls="") -> str:
    return f"<td data-value=\"{_esc(value)}\"{cls}>{_esc(value if text is None else text)}</td>"


def _video_row_html(r: _Row) -> str:
    loss = video_log_loss(r.label, r.probability) if r.label is not None else None
    wrong = " class=\"wrong\"" if r.label is not None and (r.probability > DECISION_THRESHOLD) != bool(r.label) else ""
    return (f"<tr><td data-value=\"{_esc(r.name)}\"><a href=\"videos/{_esc(r.slug)}.html\">{_esc(r.name)}</a></td>"
            + _cell(f"{r.probability:.4f}", cls=wrong) + _cell(verdict(r.probability))
            + _cell({0: "REAL", 1: "FAKE"}.get(r.label, ""), cls="")
            + _cell(f"{loss:.4f}" if loss is not None else "", cls="")
            + _cell(r.n_faces) + _cell(r.n_persons)
            + (f"<td data-value=\"{_esc(r.fallback)}\" title=\"{_esc(r.fallback_reason)}\">{_esc(r.fallback)}: "
               f"{_esc(r.fallback_reason)}</td>" if r.fallback else "<td data-value=\"\"></td>")
            + _cell(f"{r.seconds:.2f}") + "</tr>")


def _videos_table_html(rows: list[_Row]) -> str:
    """The sortable table of every video (``SORT_SCRIPT`` sorts it)."""
    numeric = (0, 1, 0, 0, 1, 1, 1, 0, 1)
    head = "".join(f"<th data-numeric=\"{n}\" data-key=\"{h.replace(' ', '_')}\">{h}</th>" for h, n in zip(
        ("video", "score", "verdict", "label", "log loss", "faces", "persons", "fallback", "seconds"), numeric))
    return (f"<table border=\"1\" class=\"sortable\" id=\"videos\"><thead><tr>{head}</tr></thead><tbody>\n"
            f"{''.join(_video_row_html(r) for r in rows)}\n</tbody></table>")
