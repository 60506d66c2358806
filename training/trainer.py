"""The training loop and its hooks (in the manner of detectron2's ``HookBase``).

:class:`Trainer` runs epochs of optimizer steps and nothing else; everything around the loop is a hook
called at fixed points: ``before_train``, ``before_epoch``, ``after_step``, ``after_epoch``,
``after_train``, in the order the hooks were given. The hooks (``training/hooks.py``) resume a run,
validate, write and prune checkpoints, log to TensorBoard and show progress; they read and set the
trainer's state (``epoch``, ``step``, ``last``, ``metrics``, ``best_score`` ...).

Determinism: each epoch seeds torch's global RNG from (seed, epoch, rank) and tells the dataset and the
sampler the epoch, so every random choice follows from (seed, epoch, sample index) and a resumed run
continues bit for bit on the CPU.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from core.devices import resolve_device, resolve_precision
from core.input_spec import InputSpec, normalize_batch
from models.registry import convert_sync_batchnorm
from training.tools.config import TrainConfig

log = logging.getLogger("train_classifier")


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun: DDP (and SyncBatchNorm on GPUs) even for one process

    @property
    def distributed(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> tuple[DistContext, torch.device]:
    """Read torchrun's environment; NCCL on GPUs, gloo on the CPU."""
    ctx = DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                      int(os.environ.get("WORLD_SIZE", 1)), launched="TORCHELASTIC_RUN_ID" in os.environ)
    device = torch.device(resolve_device(device_request, local_rank=ctx.local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if ctx.distributed and not dist.is_initialized():
        # rank 0 validates while the others wait at a barrier: allow a long validation
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return ctx, device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The config's ``amp`` as an autocast dtype; None: no mixed precision (fp32)."""
    dtype = resolve_precision(amp, str(device), training=True)
    return None if dtype == torch.float32 else dtype


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float | None, float | None]:
    """BCE with logits on the fakes and on the reals of the batch separately, then averaged."""
    fake = labels > 0.5
    parts = []
    losses: list[float | None] = []
    for selected in (fake, ~fake):
        if selected.any():
            part = nn.functional.binary_cross_entropy_with_logits(logits[selected], labels[selected])
            parts.append(part)
            losses.append(float(part.detach()))
        else:
            losses.append(None)
    loss = torch.stack(parts).mean()
    return loss, losses[0], losses[1]


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Torch's global RNG (dropout, drop-path) from (seed, epoch, rank): no state to carry over."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 7]).generate_state(1)[0]))


def sync_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Every process takes rank 0's learning rates."""
    rates = [[group["lr"] for group in optimizer.param_groups]]
    dist.broadcast_object_list(rates, src=0)
    for group, lr in zip(optimizer.param_groups, rates[0]):
        group["lr"] = lr


def mix_rng(seed: int, epoch: int, step: int, rank: int) -> np.random.Generator:
    """The generator of one step's batch change, from (seed, epoch, step, rank): a resume draws the same."""
    return np.random.default_rng([seed, epoch, step, rank, 11])


def distribute(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``model`` wrapped for DDP when the run is distributed (SyncBatchNorm on GPUs, activations kept:
    ``models.registry.convert_sync_batchnorm``), else itself."""
    if not ctx.distributed:
        return model
    if device.type == "cuda":
        model = convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


@dataclass
class StepOutput:
    """What one optimizer step leaves for the hooks."""

    loss: float
    fake_loss: float | None
    real_loss: float | None
    lr: float  # the learning rate the step used
    images: torch.Tensor  # the batch as the loader gave it (before normalisation)


class HookBase:
    """A piece of the run around the loop; override the points it needs. ``self.trainer`` is set when the
    hook is registered."""

    trainer: Trainer

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass


@dataclass
class TrainParts:
    """What the loop trains with (built by the pipeline: ``training/pipelines/train_classifier.py``)."""

    config: TrainConfig
    name: str
    seed: int
    ctx: DistContext
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None: fp32
    model: nn.Module  # the bare model (DDP wraps it when training starts)
    spec: InputSpec  # what the model takes: the loaders' samples become its input as this says
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    train_set: Any
    sampler: DistributedSampler
    train_loader: DataLoader
    steps_per_epoch: int
    run_info: dict[str, Any]  # stored with every checkpoint and in <name>_args.json
    summary: str  # the run in one line, logged once the hooks have prepared it
    # (uint8 samples, labels, rng) -> (samples, labels): a change of each training batch (3D cutmix), or None
    batch_mix: Callable[[torch.Tensor, torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]] | None = None
    preview: Callable[[torch.Tensor], np.ndarray] | None = None  # one sample as an RGB image (TensorBoard)


class Trainer:
    """Epochs of steps over ``parts.train_loader``, with ``hooks`` called around them."""

    def __init__(self, parts: TrainParts, hooks: list[HookBase], stop_after: int | None = None):
        self.parts = parts
        self.config, self.name, self.ctx = parts.config, parts.name, parts.ctx
        self.bare_model = parts.model
        self.model = parts.model
        self.optimizer, self.scheduler, self.scaler = parts.optimizer, parts.scheduler, parts.scaler
        self.run_info = parts.run_info
        self.stop_after = stop_after
        self.start_epoch = 0
        self.epoch = 0
        self.step = 0
        self.best_score = math.inf
        self.metrics: dict[str, Any] = {}
        self.val_predictions = None  # the last validation's per-video scores (training.validation)
        self.validated = False  # this epoch
        self.improved = False  # this epoch's validation beat best_score
        self.last: StepOutput | None = None
        self.step_losses: list[float] = []
        self.epochs_run: list[int] = []
        self.hooks = hooks
        for hook in hooks:
            hook.trainer = self

    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    @property
    def end_epoch(self) -> int:
        end = int(self.config.epochs)
        return end if self.stop_after is None else min(end, self.start_epoch + int(self.stop_after))

    def train(self) -> None:
        self._call("before_train")  # resuming sets start_epoch and best_score here
        if self.ctx.is_main:
            log.info("%s: %s, %s", self.name, self.run_info["init"], self.parts.summary)
        self.model = distribute(self.bare_model, self.ctx, self.parts.device)
        self.model.train()
        for epoch in range(self.start_epoch, self.end_epoch):
            self.epoch = epoch
            self.validated = self.improved = False
            self._call("before_epoch")
            self.train_epoch()
            self.epochs_run.append(self.epoch)
            self._call("after_epoch")
            if self.ctx.distributed:
                sync_learning_rates(self.optimizer)  # rank 0 alone validates: a plateau schedule acts there
                dist.barrier()
        self._call("after_train")

    def train_epoch(self) -> None:
        parts = self.parts
        seed_epoch(parts.seed, self.epoch, self.ctx.rank)
        parts.train_set.set_epoch(self.epoch)
        parts.sampler.set_epoch(self.epoch)
        for step, batch in enumerate(parts.train_loader):
            if step >= parts.steps_per_epoch:
                break
            self.step = step
            self.last = self.run_step(batch)
            self.step_losses.append(self.last.loss)
            self._call("after_step")

    @property
    def global_step(self) -> int:
        return self.epoch * self.parts.steps_per_epoch + self.step

    def run_step(self, batch: dict[str, Any]) -> StepOutput:
        """One optimizer step on ``batch`` (balanced BCE, grad scaler, clipping, scheduler step)."""
        device, dtype = self.parts.device, self.parts.dtype
        if self.parts.batch_mix is not None:
            mixed, mixed_labels = self.parts.batch_mix(batch["image"], batch["label"],
                                                       mix_rng(self.parts.seed, self.epoch, self.step, self.ctx.rank))
            batch = {**batch, "image": mixed, "label": mixed_labels}
        images = normalize_batch(batch["image"].to(device, non_blocking=True), self.parts.spec)
        labels = batch["label"].to(device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = self.model(images)
        loss, fake_loss, real_loss = balanced_bce(logits.float().squeeze(1), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), float(self.config.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return StepOutput(float(loss.detach()), fake_loss, real_loss, lr, batch["image"])
