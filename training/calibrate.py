"""Calibrated probabilities: a temperature fitted on a checkpoint's validation fold, stored in the checkpoint.

At the end of training the trainer calibrates its ``_best`` (and ``_last``) checkpoint with the per-video
scores its validation computed. A checkpoint trained before that, or one to calibrate on other data, is
calibrated afterwards::

    python -m training.calibrate weights/NAME_best --data-dir DATA_ROOT [--fold N] [--output PATH]

The scores are those of the trainer's validation: the mean of the frame probabilities of each video of
the fold (every 20th frame unless the run used ``--full-val``). The fitted temperature goes into the
checkpoint as ``calibration`` (see docs/training.md, "Calibration"); the file is rewritten atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from core.calibration import METHOD, TemperatureFit, fit_temperature
from core.devices import resolve_device
from core.files import atomic_path
from core.input_spec import InputSpec
from models.checkpoints import CheckpointError, load_model, read_checkpoint, save_error, to_plain
from models.weights import released_file
from training.datasets.classifier_dataset import FoldsError
from training.datasets.training_data import training_data
from training.trainer import autocast_dtype
from training.validation import VideoPredictions, video_probabilities

CALIBRATION_KEY = "calibration"


def calibration_record(fit: TemperatureFit, fold: int) -> dict[str, Any]:
    """The checkpoint's ``calibration`` entry for a fit on ``fold``."""
    return {"method": METHOD, "temperature": fit.temperature, "fitted_on": f"fold {fold}, {fit.videos} videos",
            "log_loss_before": fit.log_loss_before, "log_loss_after": fit.log_loss_after}


def calibrate_predictions(predictions: VideoPredictions, fold: int) -> dict[str, Any]:
    """The temperature that fits ``predictions`` (one validation's per-video scores) best, as the
    checkpoint's ``calibration`` entry."""
    return calibration_record(fit_temperature(predictions.labels, predictions.probabilities), fold)


def write_calibration(path: Path, data: dict[str, Any], calibration: dict[str, Any]) -> None:
    """``data`` (a checkpoint as read) with ``calibration`` written to ``path`` through a temp file: a
    failed write (a full disk) says so and leaves ``path`` as it was."""
    payload = to_plain({**data, CALIBRATION_KEY: calibration})
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(payload, handle)
    except OSError as exc:
        raise save_error(path, exc, sum(t.numel() * t.element_size() for t in data["state_dict"].values())) from exc


def checked_fold(path: Path, run: dict[str, Any], data_dir: Path, fold: int | None) -> int:
    """The fold to fit on: ``fold``, or the checkpoint's validation fold when None. A fold of the data
    root the checkpoint was trained on other than its validation fold is refused: it trained on it (its
    scores there are over-confident) or kept it for testing."""
    validated = run.get("fold")
    if fold is None:
        if validated is None:
            raise ValueError(f"checkpoint {path} does not record its validation fold; pass --fold N, a fold of "
                             f"{data_dir} it was not trained on")
        return int(validated)
    same_data = bool(run.get("data_dir")) and Path(run["data_dir"]).resolve() == data_dir.resolve()
    if same_data and validated is not None and fold != int(validated):
        why = ("its test fold, kept out of training and selection for testing" if fold == run.get("test_fold")
               else "it was trained on that fold, where its scores are over-confident")
        raise ValueError(f"checkpoint {path} was validated on fold {validated} of {data_dir}; fold {fold} is {why}. "
                         f"Calibrate on fold {validated} (--fold {validated}, or leave --fold out)")
    return fold


def validation_loader(data_dir: Path, fold: int, config: dict[str, Any], run: dict[str, Any], spec: InputSpec,
                      batch_size: int, workers: int) -> DataLoader:
    """The crops (or clips, for a clip model) of ``fold`` as the trainer validated them (crops: every 20th
    frame unless the run used --full-val; the run's seed and fake source)."""
    data = training_data(spec)
    _, rows, _ = data.split(data_dir, fold, bool(run.get("full_val", False)), config.get("fakes", "real"), None)
    dataset = data.dataset(data_dir, rows, "val", spec, config, int(run.get("seed", 111)))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


def checkpoint_predictions(path: Path, loader: DataLoader, device: torch.device, amp: str,
                           channels_last: bool, progress: bool = False) -> VideoPredictions:
    """The per-video validation scores of the weights in ``path`` on ``loader``'s crops."""
    loaded = load_model(path, device=device)
    model = loaded.model
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return video_probabilities(model, loader, device, autocast_dtype(amp, device), channels_last, loaded.input_spec,
                               progress)


def calibrate_checkpoint(path: str | Path, data_dir: str | Path, fold: int | None = None, *, device: str = "auto",
                         output: str | Path | None = None, batch_size: int = 32, workers: int = 0,
                         progress: bool = False) -> dict[str, Any]:
    """Fit a temperature for checkpoint ``path`` on ``fold`` of ``data_dir`` and write the checkpoint with
    it to ``output`` (default: ``path`` itself, replaced atomically). Returns the ``calibration`` entry."""
    path, data_dir = Path(path), Path(data_dir)
    target = Path(output) if output is not None else path
    if output is not None and target.exists():
        raise ValueError(f"--output {target} exists; give a new file name (or leave --output out to calibrate "
                         f"{path} in place)")
    if target == path and released_file(path.name) is not None:
        raise ValueError(f"checkpoint {path} is a released file, checked by its size when it is loaded; write "
                         f"a calibrated copy instead: --output {path}.calibrated")
    data = read_checkpoint(path)
    config, run = data.get("config") or {}, data.get("run") or {}
    fold = checked_fold(path, run, data_dir, fold)
    torch_device = torch.device(resolve_device(device))
    # the run's precision on a GPU; on the CPU fp32, as the trainer validated there
    amp = config.get("amp", "auto") if torch_device.type == "cuda" else "auto"
    spec = load_model(path).input_spec  # recorded, or derived for files that record none (the winner's)
    loader = validation_loader(data_dir, fold, config, run, spec, batch_size, workers)
    predictions = checkpoint_predictions(path, loader, torch_device, amp, bool(config.get("channels_last", False)),
                                         progress)
    calibration = calibrate_predictions(predictions, fold)
    write_calibration(target, data, calibration)
    return calibration


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint of this project (weights/NAME_best) or the winner's")
    parser.add_argument("--data-dir", required=True, help="preprocessed DATA_ROOT (folds.csv, crops/)")
    parser.add_argument("--fold", type=int, default=None,
                        help="fold to fit on (default: the checkpoint's validation fold; required for the "
                             "winner's files, which record none)")
    parser.add_argument("--output", default=None, help="write the calibrated checkpoint here (default: in place)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="loader processes")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        calibration = calibrate_checkpoint(args.checkpoint, args.data_dir, args.fold, device=args.device,
                                           output=args.output, batch_size=args.batch_size, workers=args.workers,
                                           progress=args.progress)
    except (CheckpointError, FoldsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.output or args.checkpoint}: temperature {calibration['temperature']:.4f} fitted on "
          f"{calibration['fitted_on']}; validation log loss {calibration['log_loss_before']:.4f} -> "
          f"{calibration['log_loss_after']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
