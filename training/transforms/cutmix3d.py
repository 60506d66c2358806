"""3D cutmix: a cuboid (time x height x width) of another clip of the batch pasted into a clip, its label
mixed by the cuboid's share of the clip's volume (CutMix, Yun et al. 2019, over time as well; the DFDC
"Medics" trained their 3D models with it).

For a mixed clip the share ``1 - lambda`` pasted is drawn as in CutMix (``lambda ~ Beta(alpha, alpha)``),
each side of the cuboid is the clip's side times ``(1 - lambda) ** (1/3)``, its position uniform, and the
label becomes ``(1 - s) * own + s * other`` with ``s`` the share of the volume the cuboid covers once
rounded to whole frames and pixels. All draws come from the generator passed in, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Cuboid:
    """Frames ``[t0, t1)``, rows ``[y0, y1)``, columns ``[x0, x1)`` of a ``(C, T, H, W)`` clip."""

    t0: int
    t1: int
    y0: int
    y1: int
    x0: int
    x1: int

    def volume_share(self, frames: int, height: int, width: int) -> float:
        return (self.t1 - self.t0) * (self.y1 - self.y0) * (self.x1 - self.x0) / float(frames * height * width)


def draw_cuboid(shape: tuple[int, int, int], pasted_share: float, rng: np.random.Generator) -> Cuboid:
    """A cuboid of about ``pasted_share`` of a ``(T, H, W)`` volume, at a uniform position inside it."""
    side_share = float(np.clip(pasted_share, 0.0, 1.0)) ** (1.0 / 3.0)
    bounds = []
    for length in shape:
        extent = int(round(length * side_share))
        start = int(rng.integers(0, length - extent + 1))
        bounds += [start, start + extent]
    return Cuboid(*bounds)


@dataclass(frozen=True)
class CutMix3d:
    """``probability``: the share of a batch's clips that get a cuboid; ``alpha``: the Beta distribution of
    the kept share (1: uniform)."""

    probability: float = 0.5
    alpha: float = 1.0

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, list[Cuboid | None]]:
        """``clips`` ``(N, C, T, H, W)`` and ``labels`` ``(N,)`` with cuboids pasted in: new tensors (the inputs
        are left as they are) and, per clip, the cuboid pasted into it (None: left whole)."""
        count = clips.shape[0]
        mixed, mixed_labels = clips.clone(), labels.clone().float()
        cuboids: list[Cuboid | None] = [None] * count
        if count < 2 or self.probability <= 0:
            return mixed, mixed_labels, cuboids
        partners = rng.permutation(count)
        for index in range(count):
            partner = int(partners[index]) if partners[index] != index else (index + 1) % count
            if rng.random() >= self.probability:
                continue
            kept = float(rng.beta(self.alpha, self.alpha))
            cuboid = draw_cuboid(tuple(clips.shape[2:]), 1.0 - kept, rng)
            share = cuboid.volume_share(*clips.shape[2:])
            if share <= 0:
                continue
            region = (slice(None), slice(cuboid.t0, cuboid.t1), slice(cuboid.y0, cuboid.y1), slice(cuboid.x0, cuboid.x1))
            mixed[index][region] = clips[partner][region]
            mixed_labels[index] = (1 - share) * labels[index].float() + share * labels[partner].float()
            cuboids[index] = cuboid
        return mixed, mixed_labels, cuboids
