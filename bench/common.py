"""Helpers every benchmark uses: describe the machine, replace one section of docs/benchmarks.md, run a
command into a log, record a training time, link a test fold's videos into a folder."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

PART = "dfdc_train_part_0"  # the one data part of ffpp_train

DOCS_HEADER = "# Benchmarks\n\nMeasured numbers, with the machine they ran on. `make bench` reruns them all.\n"


def machine_description() -> str:
    import torch

    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{model}, {os.cpu_count()} cores{memory}, {gpu}{load}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()} {platform.release()}")


def max_score_change(scores: dict[str, float], reference: dict[str, float]) -> float:
    """The largest |score - reference| over the videos of ``reference``."""
    return max(abs(scores[name] - value) for name, value in reference.items())


def write_section(docs: Path, section: str, body: list[str]) -> None:
    """Replace the body of ``section`` (a '## ...' heading) in ``docs``; other sections are untouched."""
    text = docs.read_text() if docs.exists() else DOCS_HEADER
    lines = text.rstrip("\n").split("\n")
    if section in lines:
        start = lines.index(section) + 1
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [""] + body + [""]
    else:
        lines += ["", section, ""] + body
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("\n".join(lines).rstrip() + "\n")


def publish(section: str, body: list[str], docs: Path | None) -> None:
    """Print a benchmark's section, and write it into ``docs`` when given."""
    print("\n".join(body))
    if docs:
        write_section(docs, section, body)


def run_command(command: list[str], cwd: Path, env: dict | None, log: Path) -> float:
    """Run ``command`` in ``cwd`` (``env`` over this process's environment), its output appended to ``log``;
    its wall time in seconds. A failure raises CalledProcessError (the log has its output)."""
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as sink:
        subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, check=True, stdout=sink,
                       stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def recorded_time(path: Path, key: str, seconds: float) -> float:
    """The wall time of the run that trained ``key``: recorded the first time, read back on a rerun (when
    ``--resume`` finds the run complete and returns at once)."""
    times = json.loads(path.read_text()) if path.is_file() else {}
    if key not in times:
        times[key] = round(seconds, 1)
        path.write_text(json.dumps(times, indent=1))
    return float(times[key])


def fold_videos_folder(data_root: Path, fold: int, out: Path) -> Path:
    """A folder of links to the videos of ``fold`` (folds.csv) of a one-part DATA_ROOT, with their
    ``metadata.json`` entries: a test folder ``predict_folder.py`` scores."""
    import pandas as pd

    from datasets.dfdc import METADATA_NAME

    folds = pd.read_csv(data_root / "folds.csv", dtype={"video": str})
    videos = sorted(set(folds.loc[folds["fold"] == fold, "video"]))
    part = data_root / PART
    metadata = json.loads((part / METADATA_NAME).read_text())
    out.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for video in videos:
        name = f"{video}.mp4"
        link = out / name
        if not link.exists():
            link.symlink_to((part / name).resolve())
        chosen[name] = metadata[name]
    (out / METADATA_NAME).write_text(json.dumps(chosen, indent=1))
    return out
