"""Per-step learning-rate schedules (stepped after every optimizer step)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, schedule: dict, total_steps: int, base_lr: float) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based)."""
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


def create_scheduler(optimizer: torch.optim.Optimizer, schedule: dict, total_steps: int) -> LambdaLR:
    base_lr = optimizer.param_groups[0]["lr"]
    return LambdaLR(optimizer, lambda step: lr_factor(step, schedule, total_steps, base_lr))


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
