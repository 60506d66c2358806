"""Where a folder prediction writes, checked before any work, and how its rows are kept when a disk fills.

Files next to ``--output``: ``OUT.metrics.json``, ``OUT.persons.json`` and, for ``--explain`` without a
report, ``OUT.explain/``. The submission CSV (``filename,label``) writes a video name that starts like a
spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) behind a single quote. When the CSV
cannot be written (disk full, quota), the rows go to a recovery file in the temp or home folder; the
caller prints them when no place takes them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
import time
from pathlib import Path

from core.errors import InputError
from core.files import write_text_atomic


class OutputWriteError(Exception):
    """An output could not be written (disk full, quota, a file system gone read-only); the message says
    where the predictions are. Exit code 3."""


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

@contextlib.contextmanager
def writing(what: str, then: str):
    """An OSError inside (disk full, quota, a file system gone read-only) becomes an OutputWriteError
    naming ``what`` could not be written and, in ``then``, where the predictions are and what to do."""
    try:
        yield
    except OSError as exc:
        raise OutputWriteError(f"{what} could not be written ({exc.strerror or exc}); {then}") from exc


def rows_kept(output: Path, predictions, n_videos: int) -> tuple[Path | None, str]:
    """Save the rows (``save_submission``) and say where they are: (the file, or None when no place took
    them and the caller must print them, ``submission_text``; the message)."""
    where, failures = save_submission(output, predictions)
    done = f"the {len(predictions)} of {n_videos} rows done" if len(predictions) < n_videos else \
        f"the {len(predictions)} predictions"
    if where == output:
        return where, f"{done} are in {output}"
    if where is not None:
        return where, (f"{failures[0]}; {done} are saved in the recovery file {where}: free space on the disk "
                       f"of {output} (or choose another --output) and copy the file there")
    return None, (f"no place could take {done} ({'; '.join(failures)}): they are printed above on stdout "
                  f"(filename,label); free space and save them")

