"""Validation scores: the per-video mean of a model's frame probabilities on a fold's crops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.input_spec import InputSpec, normalize_batch
from core.metrics import video_scores


@dataclass(frozen=True)
class VideoPredictions:
    """One validation's per-video scores, videos sorted by name."""

    videos: list[str]
    labels: list[float]  # 1 FAKE, 0 REAL
    probabilities: list[float]  # mean of the video's frame probabilities


@torch.no_grad()
def video_probabilities(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
                        channels_last: bool, spec: InputSpec, progress: bool = False) -> VideoPredictions:
    """The per-video mean of the frame probabilities of ``model`` on ``loader``'s crops."""
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
    return VideoPredictions(videos, [labels[v] for v in videos], [sums[v] / counts[v] for v in videos])


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
             channels_last: bool, spec: InputSpec, progress: bool = False) -> dict[str, Any]:
    """Per-video mean of the frame probabilities, then video_scores (log losses, AUC)."""
    predictions = video_probabilities(model, loader, device, dtype, channels_last, spec, progress)
    return video_scores(predictions.labels, predictions.probabilities)
