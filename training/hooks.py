"""The hooks of a training run (see ``training/trainer.py``): resume, progress, validation, TensorBoard,
checkpoints with retention, calibration. Rank 0 alone validates and writes; the pipeline gives the other
ranks only the hooks every process needs (resume, progress)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.files import write_text_atomic
from core.metrics import video_scores
from core.run_control import stop_deferred
from models.checkpoints import (
    CheckpointSaveError,
    checkpoint_path,
    load_state_dict_strict,
    read_checkpoint,
    save_checkpoint,
)
from training.calibrate import (
    CALIBRATION_KEY,
    calibrate_predictions,
    checkpoint_predictions,
    write_calibration,
)
from training.run_folder import copy_atomic, drop_replaced, prune_epochs, remove_stale_run_temps
from training.trainer import HookBase
from training.transforms.augmentations import tensor_to_image
from training.validation import video_probabilities

log = logging.getLogger("train_classifier")

SELECTION_METRIC = "balanced_log_loss"  # mean of the fake and real log losses, lower is better


class ResumeHook(HookBase):
    """Loads a checkpoint's weights before the first epoch; when ``continuing``, also its optimizer,
    scheduler and grad scaler, its epoch (the run goes on after it) and its best score."""

    def __init__(self, path: Path, data: dict[str, Any], continuing: bool):
        self.path, self.data, self.continuing = path, data, continuing

    def before_train(self) -> None:
        trainer, data = self.trainer, self.data
        load_state_dict_strict(trainer.bare_model, data["state_dict"], str(self.path))
        trainer.run_info["init"] = f"weights of {self.path}"
        if self.continuing:
            trainer.optimizer.load_state_dict(data["optimizer"])
            trainer.scheduler.load_state_dict(data["scheduler"])
            trainer.scaler.load_state_dict(data["scaler"])
            trainer.start_epoch = int(data["epoch"]) + 1
            trainer.best_score = float(data.get("best_score", math.inf))
            trainer.run_info["init"] = f"resumed from {self.path} after epoch {int(data['epoch'])}"
        self.data = None  # the optimizer state of a large model: not kept twice


class ProgressHook(HookBase):
    """A tqdm bar per epoch with the running mean loss and the learning rate."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.running = 0.0

    def before_epoch(self) -> None:
        trainer = self.trainer
        self.running = 0.0
        self.bar = tqdm(total=trainer.parts.steps_per_epoch, desc=f"{trainer.name} epoch {trainer.epoch}",
                        disable=not self.enabled, dynamic_ncols=True)

    def after_step(self) -> None:
        last = self.trainer.last
        self.running += last.loss
        self.bar.set_postfix(loss=f"{self.running / (self.trainer.step + 1):.4f}", lr=f"{last.lr:.2e}")
        self.bar.update()

    def after_epoch(self) -> None:
        self.bar.close()


class ValidationHook(HookBase):
    """Every ``val_every`` epochs and after the last: the validation scores; sets the trainer's
    ``val_predictions`` (per video), ``metrics``, ``validated``, ``improved`` (the selection metric beat
    ``best_score``) and ``best_score``."""

    def __init__(self, loader: DataLoader, progress: bool):
        self.loader, self.progress = loader, progress

    def after_epoch(self) -> None:
        trainer, config = self.trainer, self.trainer.config
        if (trainer.epoch + 1) % int(config.val_every) != 0 and trainer.epoch != int(config.epochs) - 1:
            return
        parts = trainer.parts
        trainer.val_predictions = video_probabilities(trainer.bare_model, self.loader, parts.device, parts.dtype,
                                                      config.channels_last, parts.spec,
                                                      self.progress)
        trainer.metrics = video_scores(trainer.val_predictions.labels, trainer.val_predictions.probabilities)
        score = trainer.metrics[SELECTION_METRIC]
        trainer.scheduler.after_validation(float(score))  # the plateau schedule's input
        trainer.validated = True
        trainer.improved = bool(np.isfinite(score) and score < trainer.best_score)
        trainer.best_score = score if trainer.improved else trainer.best_score
        log.info("%s epoch %d: val %s", trainer.name, trainer.epoch,
                 ", ".join(f"{k} {v:.4f}" for k, v in trainer.metrics.items() if isinstance(v, float)))


class TensorBoardHook(HookBase):
    """Losses and learning rate per step, a few augmented samples per epoch, the validation scores."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.writer = None

    def before_train(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.log_dir))

    def after_step(self) -> None:
        trainer, last, step = self.trainer, self.trainer.last, self.trainer.global_step
        self.writer.add_scalar("train/loss", last.loss, step)
        self.writer.add_scalar("train/lr", last.lr, step)
        if last.fake_loss is not None:
            self.writer.add_scalar("train/fake_loss", last.fake_loss, step)
        if last.real_loss is not None:
            self.writer.add_scalar("train/real_loss", last.real_loss, step)
        shown_count = trainer.config.tensorboard_images
        if trainer.step == 0 and shown_count:
            preview = trainer.parts.preview or tensor_to_image
            shown = [preview(t) for t in last.images[:shown_count]]
            self.writer.add_images("train/images", np.stack(shown), step, dataformats="NHWC")

    def after_epoch(self) -> None:
        if self.trainer.validated:
            for key, value in self.trainer.metrics.items():
                self.writer.add_scalar(f"val/{key}", value, self.trainer.epoch)
        self.writer.flush()

    def after_train(self) -> None:
        self.writer.close()


class CheckpointHook(HookBase):
    """Prepares the weights folder (temp files of a killed save, the files ``--overwrite`` replaces, the
    resolved config as ``<name>_args.json`` and in the log folder); after each epoch writes
    ``<name>_<epoch>``, copies it to ``_last`` (and to ``_best`` when the validation improved) and keeps
    only the newest ``keep_checkpoints`` epoch files."""

    def __init__(self, weights_dir: Path, log_dir: Path, replaced: list[Path], resume_epoch: int | None):
        self.weights_dir, self.log_dir = weights_dir, log_dir
        self.replaced, self.resume_epoch = replaced, resume_epoch
        self.written: list[Path] = []  # the checkpoints this run wrote that still exist

    def before_train(self) -> None:
        name = self.trainer.name
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        removed_temps = remove_stale_run_temps(self.weights_dir, name)
        if removed_temps:
            log.info("%s: removed %d temp file(s) of an interrupted checkpoint save", name, removed_temps)
        if self.replaced:
            drop_replaced(self.weights_dir, name, self.replaced, self.resume_epoch)
        resolved = json.dumps({"config": self.trainer.config.as_dict(), "run": self.trainer.run_info}, indent=2,
                              sort_keys=True)
        write_text_atomic(checkpoint_path(self.weights_dir, name, "args"), resolved)
        write_text_atomic(self.log_dir / "args.json", resolved)

    def after_epoch(self) -> None:
        with stop_deferred():  # a stop now would leave an epoch file newer than _last: --resume refuses that
            self._save_epoch()

    def _save_epoch(self) -> None:
        trainer, name = self.trainer, self.trainer.name
        path = checkpoint_path(self.weights_dir, name, trainer.epoch)
        save_checkpoint(path, trainer.bare_model, trainer.config.as_dict(), optimizer=trainer.optimizer.state_dict(),
                        scheduler=trainer.scheduler.state_dict(), scaler=trainer.scaler.state_dict(),
                        epoch=trainer.epoch, best_score=trainer.best_score, metrics=trainer.metrics,
                        run=trainer.run_info)
        last = checkpoint_path(self.weights_dir, name, "last")
        copy_atomic(path, last)
        self.written += [path, last]
        if trainer.improved:
            best = checkpoint_path(self.weights_dir, name, "best")
            copy_atomic(path, best)
            self.written.append(best)
        pruned = prune_epochs(self.weights_dir, name, trainer.config.keep_checkpoints)
        self.written = [c for c in self.written if c not in pruned]


class CalibrationHook(HookBase):
    """At the end of the run, fits a temperature to the validation scores of ``_best`` and of ``_last`` and
    stores it in each (``calibration``, see ``training/calibrate.py``). The scores are the ones the
    validation of that checkpoint's epoch computed in this call; ``_best`` from an earlier call (resumed
    runs) is scored again. A checkpoint that already holds a calibration keeps it (its weights have not
    changed since); ``_last`` of an epoch this call did not validate is left as it is."""

    def __init__(self, weights_dir: Path, loader: DataLoader, fold: int, progress: bool):
        self.weights_dir, self.loader, self.fold, self.progress = weights_dir, loader, fold, progress
        self.by_epoch: dict[int, Any] = {}  # validated epoch -> its per-video scores (the best and the newest)
        self.best_epoch: int | None = None

    def after_epoch(self) -> None:
        trainer = self.trainer
        if not trainer.validated:
            return
        if trainer.improved:
            self.best_epoch = trainer.epoch
        self.by_epoch[trainer.epoch] = trainer.val_predictions
        self.by_epoch = {e: p for e, p in self.by_epoch.items() if e in (trainer.epoch, self.best_epoch)}

    def after_train(self) -> None:
        for which in ("best", "last"):
            self._calibrate(checkpoint_path(self.weights_dir, self.trainer.name, which), which == "best")

    def _calibrate(self, path: Path, score_again: bool) -> None:
        trainer = self.trainer
        if not path.is_file():
            return
        data = read_checkpoint(path)
        if data.get(CALIBRATION_KEY):
            return
        epoch = int(data["epoch"])
        predictions = self.by_epoch.get(epoch)
        if predictions is None and score_again:
            predictions = checkpoint_predictions(path, self.loader, trainer.parts.device, trainer.config.amp,
                                                 trainer.config.channels_last, self.progress)
        if predictions is None:
            log.info("%s: epoch %d was not validated in this call, no calibration; add one with python -m "
                     "training.calibrate %s --data-dir DATA_ROOT", path.name, epoch, path)
            return
        try:
            calibration = calibrate_predictions(predictions, self.fold)
            write_calibration(path, data, calibration)
        except (ValueError, CheckpointSaveError) as exc:  # the run's weights are saved: say it and go on
            log.warning("%s: not calibrated (%s); calibrate it later with python -m training.calibrate %s "
                        "--data-dir DATA_ROOT", path.name, exc, path)
            return
        log.info("%s: temperature %.4f fitted on %s: validation log loss %.4f -> %.4f", path.name,
                 calibration["temperature"], calibration["fitted_on"], calibration["log_loss_before"],
                 calibration["log_loss_after"])
