"""The hooks of a training run (see ``training/trainer.py``): resume, progress, validation, TensorBoard,
checkpoints with retention. Rank 0 alone validates and writes; the pipeline gives the other ranks only
the hooks every process needs (resume, progress)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.files import write_text_atomic
from core.input_spec import InputSpec, normalize_batch
from core.metrics import video_scores
from core.run_control import stop_deferred
from models.checkpoints import checkpoint_path, load_state_dict_strict, save_checkpoint
from training.run_folder import copy_atomic, drop_replaced, prune_epochs, remove_stale_run_temps
from training.trainer import HookBase
from training.transforms.augmentations import tensor_to_image

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


@torch.no_grad()
def video_probabilities(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
                        channels_last: bool, spec: InputSpec,
                        progress: bool = False) -> tuple[list[str], list[float], list[float]]:
    """(videos, labels, probabilities): the per-video mean of the frame probabilities, videos sorted."""
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    labels: dict[str, float] = {}
    for batch in tqdm(loader, desc="validation", disable=not progress, leave=False):
        images = normalize_batch(batch["image"].to(device, non_blocking=True), spec)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            probs = torch.sigmoid(model(images).float().squeeze(1)).cpu().numpy()
        for video, prob, label in zip(batch["video"], probs, batch["label"].numpy()):
            sums[video] = sums.get(video, 0.0) + float(prob)
            counts[video] = counts.get(video, 0) + 1
            labels[video] = float(label)
    model.train()
    videos = sorted(sums)
    return videos, [labels[v] for v in videos], [sums[v] / counts[v] for v in videos]


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
             channels_last: bool, spec: InputSpec, progress: bool = False) -> dict[str, Any]:
    """Per-video mean of the frame probabilities, then video_scores (log losses, AUC)."""
    _, labels, probabilities = video_probabilities(model, loader, device, dtype, channels_last, spec, progress)
    return video_scores(labels, probabilities)


class ValidationHook(HookBase):
    """Every ``val_every`` epochs and after the last: the validation scores; sets the trainer's
    ``metrics``, ``validated``, ``improved`` (the selection metric beat ``best_score``) and ``best_score``."""

    def __init__(self, loader: DataLoader, progress: bool):
        self.loader, self.progress = loader, progress

    def after_epoch(self) -> None:
        trainer, config = self.trainer, self.trainer.config
        if (trainer.epoch + 1) % int(config.val_every) != 0 and trainer.epoch != int(config.epochs) - 1:
            return
        parts = trainer.parts
        trainer.metrics = evaluate(trainer.bare_model, self.loader, parts.device, parts.dtype, config.channels_last,
                                   parts.spec, self.progress)
        score = trainer.metrics[SELECTION_METRIC]
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
            shown = [tensor_to_image(t) for t in last.images[:shown_count]]
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
