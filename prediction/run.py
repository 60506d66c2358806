"""A folder prediction, end to end: the inputs checked before any work, every video predicted with its
report page and heatmaps written as it arrives, then the submission CSV, ``OUT.metrics.json``,
``OUT.persons.json`` and the report's index.

``run(request, console)`` is what ``predict_folder.py`` does; its messages (warnings, the summary, the
evaluation table) go to the ``Console`` the caller gives, which the command line prints. Whatever stops
a run keeps the rows done so far: in ``OUT.csv``, else in a recovery file (``prediction.outputs``), else
on the console's ``out``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from core.files import write_json_atomic
from prediction.inputs import (
    PredictionRequest,
    RunLabels,
    choose_checkpoints,
    list_input_videos,
    load_labels,
    video_folder_keys,
    videos_in_split,
)
from prediction.options import PredictorOptions, resolve_options
from prediction.outputs import (
    OutputWriteError,
    check_outputs,
    explain_path_for,
    metrics_path_for,
    persons_path_for,
    rows_kept,
    spreadsheet_safe,
    submission_text,
    writing,
)
from prediction.summary import families_record, json_safe, run_context, settings_record, summarize


def _silent(text: str) -> None:
    pass


@dataclass(frozen=True)
class Console:
    """Where a run's messages go: ``out`` the results, ``err`` warnings and notes (the command line:
    stdout and stderr). Silent by default."""

    out: Callable[[str], None] = _silent
    err: Callable[[str], None] = _silent


def print_console() -> Console:
    """The command line's console: ``print`` to stdout and stderr (looked up at each message)."""
    return Console(out=print, err=lambda text: print(text, file=sys.stderr))


@dataclass(frozen=True)
class RunResult:
    """What a finished run wrote and scored."""

    output: Path
    summary: dict  # what OUT.metrics.json holds
    metrics_file: Path
    persons_file: Path
    report_index: Path | None
    explain_dir: Path | None  # heatmaps without a report

    @property
    def n_errors(self) -> int:
        """Videos that failed with an unexpected error (``--keep-going`` gave them 0.5)."""
        return self.summary["fallbacks"]["error"]


def request_options(request: PredictionRequest) -> PredictorOptions:
    """The preset's options with the ones the request gives on top."""
    try:
        return resolve_options(request.preset, **request.option_overrides)
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def load_predictor(request: PredictionRequest, checkpoints: list[Path], options: PredictorOptions):
    """The predictor of ``checkpoints``; a checkpoint that does not fit, or is refused, is bad input."""
    from models.checkpoints import CheckpointError
    from prediction.predictor import VideoPredictor

    try:
        return VideoPredictor(checkpoints, options, encoder=request.encoder,
                              keep_face_crops=bool(request.report or request.explain))
    except (CheckpointError, ValueError, RuntimeError) as exc:
        raise InputError(str(exc)) from exc


def keep_rows(output: Path, predictions, n_videos: int, console: Console) -> tuple[Path | None, str]:
    """``rows_kept``; rows that no place took are written on the console's ``out``."""
    where, message = rows_kept(output, predictions, n_videos)
    if where is None:
        console.out(submission_text(predictions).removesuffix("\n"))
    return where, message


def predict_videos(request: PredictionRequest, predictor, videos: list[Path], display: dict, report,
                   console: Console) -> tuple[list, float]:
    """Every video's prediction, its report page and heatmaps written as it arrives; on any exception the
    rows done so far are kept (``keep_rows``) before it goes on up."""
    from tqdm import tqdm

    from prediction.explain import explain_prediction, write_heatmaps
    from prediction.predictor import predict_on_video_set
    from prediction.report import page_slug

    explain_dir = explain_path_for(request.output) if request.explain and not request.report else None
    start = time.perf_counter()
    predictions = []
    explain_slugs: set[str] = set()
    stream = predict_on_video_set(predictor, videos, prefetch=request.prefetch, keep_going=request.keep_going)
    try:
        for pred in tqdm(stream, total=len(videos), unit="video", desc="predict", disable=not request.progress):
            pred.display_name = display.get(pred.path)
            predictions.append(pred)
            # a video's pages and heatmaps are written as it arrives; then its crops are dropped
            heatmaps = explain_prediction(predictor, pred, request.explain) if request.explain else {}
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
        kept = keep_rows(request.output, predictions, len(videos), console)[1]
        failed = "" if isinstance(exc, OutputWriteError) or len(predictions) == len(videos) else \
            f" at {videos[len(predictions)]}"
        console.err(f"stopped{failed}: {kept}")
        raise
    return predictions, time.perf_counter() - start


def write_results(request: PredictionRequest, predictor, predictions, labels: RunLabels, folder_of: dict,
                  report, elapsed_s: float, kept: str) -> RunResult:
    """The metrics and persons files and the report's index, after the CSV (``kept`` says where it is)."""
    from prediction.persons import write_persons

    output = request.output
    summary = summarize(predictions, labels.labels, folder_of, labels.entries, request.bootstrap)
    summary["seconds_per_video"] = elapsed_s / len(predictions)
    summary["models"] = [str(m.path) for m in predictor.models]
    summary["families"] = families_record(predictor)
    summary["calibration"] = predictor.calibration_record()
    summary["settings"] = settings_record(request.preset, predictor, labels.path if labels.labels else None)
    metrics_file, persons_file = metrics_path_for(output), persons_path_for(output)
    with writing("the metrics, persons file or report", f"{kept}; free space and run again for the rest"):
        write_json_atomic(metrics_file, json_safe(summary))
        write_persons(persons_file, predictions)
        index = report.finish(predictions, summary, run_context(predictor, list(request.argv)),
                              [output, metrics_file, persons_file]) if report is not None else None
    explain_dir = explain_path_for(output) if request.explain and not request.report else None
    return RunResult(output, summary, metrics_file, persons_file, index, explain_dir)


def run(request: PredictionRequest, console: Console = Console()) -> RunResult:
    """Predict every video of the request and write the CSV, metrics, persons file and report.

    Raises InputError for bad input (found before any video is read), OutputWriteError when an output
    cannot be written during the run (the message says where the rows are)."""
    output = request.output
    if request.explain < 0:
        raise InputError(f"--explain {request.explain}: give the number of faces per person to explain (1 or more)")
    if request.bootstrap.resamples < 0:
        raise InputError(f"--bootstrap {request.bootstrap.resamples}: give the number of resamples for the "
                         f"confidence intervals (0: none)")
    check_outputs(output, request.report, request.explain)
    videos = list_input_videos(request.test_dirs, request.video, console.err)
    options = request_options(request)
    checkpoints = choose_checkpoints(request, console.err)
    labels = load_labels(request, videos, console.err)
    if request.split:
        videos = videos_in_split(request.split, videos, labels)
    folder_of = {labels.display.get(v, v.name): key for v, key in video_folder_keys(request.test_dirs, videos).items()}

    from prediction.report import ReportWriter

    predictor = load_predictor(request, checkpoints, options)
    console.err(f"{len(videos)} videos, {len(checkpoints)} model(s): "
                + ", ".join(f"{m.path.name} ({m.family} {kind}, {m.encoder}, {m.input_size} px)"
                            for m, kind in zip(predictor.models, predictor.model_kinds)))
    with writing(f"--report {request.report}", "free space, or choose another --report folder, and run again"):
        report = (ReportWriter(request.report, labels.labels, predictor.options, request.report_videos)
                  if request.report else None)
    predictions, elapsed_s = predict_videos(request, predictor, videos, labels.display, report, console)

    where, kept = keep_rows(output, predictions, len(videos), console)
    if where != output:
        raise OutputWriteError(kept)
    result = write_results(request, predictor, predictions, labels, folder_of, report, elapsed_s, kept)
    show_summary(result, bool(labels.labels), [p.name for p in predictions], console)
    return result


def show_summary(result: RunResult, labelled: bool, row_names: list[str], console: Console) -> None:
    """What was written, the fallbacks, names quoted in the CSV, the partly decoded videos, the scores and
    the evaluation table, and where the heatmaps and the report are."""
    summary, output, files = result.summary, result.output, [result.metrics_file, result.persons_file]
    console.out(f"wrote {output} ({summary['n_videos']} rows), {' and '.join(str(f) for f in files)}")
    fb = summary["fallbacks"]
    console.out(f"fallbacks (predicted 0.5): {fb['total']} (unreadable {fb['unreadable']}, no face "
                f"{fb['no_face']}, no clip chunk {fb['no_clip']}, error {fb['error']})")
    if fb["no_face"]:
        console.err(f"{fb['no_face']} video(s) with no face: if their faces are small (far from the camera), try a "
                    f"larger --detector-scale (each one's warning above names the value)")
    quoted = [name for name in row_names if spreadsheet_safe(name) != name]
    if quoted:
        console.err(f"{len(quoted)} video name(s) start like a spreadsheet formula (e.g. {quoted[0]}): their rows "
                    f"in {output} begin with a ' so that a spreadsheet shows them as text; rename such files "
                    f"before submitting")
    if summary["partly_decoded_videos"]:
        partial = sorted(summary["partly_decoded_videos"])
        console.err(f"partly decoded (scored on the frames that decode): {len(partial)} video(s): "
                    f"{', '.join(partial[:5])}{' ...' if len(partial) > 5 else ''} (warnings above, list in "
                    f"{files[0]})")
    if labelled:
        from prediction.evaluation import format_table, interval_text

        console.out(f"log loss {summary['log_loss']:.4f}{interval_text(summary, 'log_loss')}  AUC "
                    f"{summary['auc']:.4f}{interval_text(summary, 'auc')}  accuracy {summary['accuracy']:.4f}  "
                    f"({summary['n_labelled']} labelled videos, {summary['n_fake']} fake; "
                    f"{summary['n_unlabelled']} without label)")

        uncalibrated = summary.get("uncalibrated")
        if uncalibrated:
            raw = uncalibrated["overall"]
            console.out(f"before calibration (raw scores): log loss {raw['log_loss']:.4f}"
                        f"{interval_text(raw, 'log_loss')}  AUC {raw['auc']:.4f}{interval_text(raw, 'auc')}")
        console.out(format_table(summary["evaluation"]))
    if result.explain_dir is not None:
        console.out(f"Grad-CAM heatmaps: {result.explain_dir}")
    if result.report_index is not None:
        console.out(f"report: {result.report_index}")
