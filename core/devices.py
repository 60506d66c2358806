"""Device and numeric precision: one vocabulary and one resolver for preprocessing, training and prediction.

Devices: ``auto`` (the GPU when CUDA is available, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
Precisions: ``auto``, ``fp32``, ``fp16``, ``bf16``; ``none`` (the training configs' older word for
"no mixed precision") means ``fp32``. ``auto`` is fp32 on the CPU; on a GPU it is fp16 for prediction
(the winning submission's numerics; fp16 keeps more mantissa bits than bf16) and, for training, bf16
where the GPU supports it (no loss scaling needed), else fp16 with a grad scaler. fp16/bf16 on the CPU
are errors rather than a silent fp32 run.

    python -m core.devices --need-gpus N    # exit 2 with a message when N GPUs are not there
"""

from __future__ import annotations

import argparse
import os
import re
import sys

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PRECISION_ALIASES = {"none": "fp32"}
PRECISION_CHOICES = PRECISIONS + tuple(PRECISION_ALIASES)
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """A device or precision that cannot be had on this machine; the message says what to use instead."""


def resolve_device(device: str = "auto", local_rank: int | None = None) -> str:
    """``"cpu"`` or ``"cuda[:N]"``. ``local_rank`` (a torchrun process) picks the GPU for ``auto`` and
    ``cuda``; an explicit ``cuda:N`` is kept."""
    import torch

    if not _DEVICE.match(device) and device != "auto":
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {device} was asked for but CUDA is not available "
                          f"(torch {torch.__version__}); use --device cpu")
    if device in ("auto", "cuda"):
        return "cuda" if local_rank is None else f"cuda:{local_rank}"
    index = int(device.split(":")[1])
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return device


def resolve_precision(precision: str, device: str, *, training: bool = False):
    """The torch dtype of the model's arithmetic (``torch.float32`` = no mixed precision)."""
    import torch

    name = PRECISION_ALIASES.get(precision, precision)
    if name not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16 (none = fp32)")
    on_gpu = device.startswith("cuda")
    if name == "auto":
        if not on_gpu:
            return torch.float32
        if training and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if name != "fp32" and not on_gpu:
        raise DeviceError(f"precision {precision} needs a GPU; on {device} use fp32 (or auto)")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def gpu_shortage(needed: int) -> str | None:
    """Why ``needed`` GPUs cannot be used here (None when they can)."""
    import torch

    if needed <= 0:
        return None
    if not torch.cuda.is_available():
        return (f"NUM_GPUS={needed} but this machine has no CUDA GPU (torch {torch.__version__}: "
                f"torch.cuda.is_available() is False). Use NUM_GPUS=0 to train on the CPU, or "
                f"TRAIN_DEVICE=cpu to run {needed} CPU processes (DDP over gloo, for testing)")
    count = torch.cuda.device_count()
    if count < needed:
        return (f"NUM_GPUS={needed} but only {count} CUDA GPU(s) are visible (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use NUM_GPUS={count} or fewer")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that this machine has the GPUs a run asks for.")
    parser.add_argument("--need-gpus", type=int, required=True)
    problem = gpu_shortage(parser.parse_args(argv).need_gpus)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
