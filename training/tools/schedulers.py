"""Learning-rate schedules by name (``SCHEDULES``, chosen by the config's ``schedule.type``) and the
optimizer.

A schedule is stepped after every optimizer step (``step()``) and told every validation's loss
(``after_validation(loss)``, the balanced validation log loss); each entry uses the one it needs:

* ``poly``, ``cosine``, ``constant``: a factor of the base lr per step (``warmup_steps`` of linear
  warm-up first; ``min_lr`` the floor);
* ``one_cycle``: ``torch.optim.lr_scheduler.OneCycleLR`` over the run's steps (the DFDC "Medics"
  trained their 3D models with it): from ``lr / div_factor`` up to ``lr`` over ``pct_start`` of the
  steps, then down to ``lr / div_factor / final_div_factor``; momentum (Adam's beta1) cycled inversely;
* ``plateau``: ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on the validation loss: the lr times
  ``factor`` after ``patience`` validations without improvement, never below ``min_lr``.

A new schedule is one function ``(optimizer, schedule dict, total_steps) -> scheduler`` (with
``step``, ``after_validation``, ``state_dict``, ``load_state_dict``) and one ``SCHEDULES.register`` line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR, ReduceLROnPlateau

from core.registry import Registry


def lr_factor(step: int, schedule: dict, total_steps: int, base_lr: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based) for the factor schedules."""
    warmup = int(schedule.get("warmup_steps", 0))
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    kind = schedule["type"]
    min_factor = float(schedule.get("min_lr", 0.0)) / base_lr if base_lr > 0 else 0.0
    if kind == "constant":
        return 1.0
    if kind == "poly":
        max_iter = int(schedule.get("max_iter") or total_steps)
        progress = min(step, max_iter) / max(max_iter, 1)
        return max((1 - progress) ** float(schedule.get("power", 0.9)), min_factor)
    if kind == "cosine":
        span = max(total_steps - warmup, 1)
        progress = min(max(step - warmup, 0), span) / span
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule type {kind!r}; use poly, cosine or constant")


class FactorSchedule(LambdaLR):
    """``lr_factor`` per step; validation losses change nothing."""

    def after_validation(self, loss: float) -> None:
        pass


class OneCycleSchedule(OneCycleLR):
    def after_validation(self, loss: float) -> None:
        pass


class PlateauSchedule(ReduceLROnPlateau):
    """ReduceLROnPlateau on the validation loss; the per-step ``step()`` does nothing."""

    def step(self, metrics: float | None = None, epoch: int | None = None) -> None:  # noqa: D102
        if metrics is not None:
            super().step(metrics)

    def after_validation(self, loss: float) -> None:
        if math.isfinite(loss):
            super().step(loss)


ScheduleBuilder = Callable[[torch.optim.Optimizer, dict, int], object]
SCHEDULES: Registry[ScheduleBuilder] = Registry("learning-rate schedule")


def factor_schedule(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int) -> FactorSchedule:
    base_lr = optimizer.param_groups[0]["lr"]
    return FactorSchedule(optimizer, lambda step: lr_factor(step, schedule, total_steps, base_lr))


def one_cycle_schedule(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int) -> OneCycleSchedule:
    return OneCycleSchedule(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups],
                            total_steps=max(int(total_steps), 2), pct_start=float(schedule.get("pct_start", 0.3)),
                            div_factor=float(schedule.get("div_factor", 25.0)),
                            final_div_factor=float(schedule.get("final_div_factor", 1e4)))


def plateau_schedule(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int) -> PlateauSchedule:
    return PlateauSchedule(optimizer, mode="min", factor=float(schedule.get("factor", 0.5)),
                           patience=int(schedule.get("patience", 2)), min_lr=float(schedule.get("min_lr", 0.0)))


for _name in ("poly", "cosine", "constant"):
    SCHEDULES.register(_name, factor_schedule)
SCHEDULES.register("one_cycle", one_cycle_schedule)
SCHEDULES.register("plateau", plateau_schedule)


def create_scheduler(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int):
    """The config's schedule (``schedule["type"]``, an entry of ``SCHEDULES``) over ``total_steps`` steps."""
    return SCHEDULES.get(schedule["type"])(optimizer, schedule, total_steps)


def create_optimizer(params, optimizer: dict) -> torch.optim.Optimizer:
    kind = optimizer["type"]
    lr = float(optimizer["lr"])
    weight_decay = float(optimizer.get("weight_decay", 0.0))
    if kind == "SGD":
        return torch.optim.SGD(params, lr=lr, momentum=float(optimizer.get("momentum", 0.9)),
                               nesterov=bool(optimizer.get("nesterov", True)), weight_decay=weight_decay)
    if kind == "Adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "AdamW":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer type {kind!r}; use SGD, Adam or AdamW")
