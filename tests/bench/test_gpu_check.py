"""bench/gpu_check: the parts a machine without a GPU can check (its --dry-run runs every step on the CPU;
it takes about a minute, so it is run by hand: `bench/gpu_check.sh --dry-run`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from bench import gpu_check

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_it_refuses_before_any_work(tmp_path):
    assert gpu_check.missing_requirements(dry_run=True) == []
    assert any("CUDA GPU" in m for m in gpu_check.missing_requirements(dry_run=False))
    run = subprocess.run([str(REPO / "bench" / "gpu_check.sh"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--dry-run" in run.stderr and "CUDA GPU" in run.stderr
    assert not (tmp_path / "out").exists()


def test_report_names_failed_steps_and_goals():
    results = {
        "data": {"clip_seconds": 10.0, "clip_size": "1920x1080"},
        "training_precisions": {"encoder": "tf_efficientnet_b7_ns", "size": 380, "batch": 12, "steps": 20,
                                "warmup": 5, "device": "cuda",
                                "rows": [{"precision": "fp32", "images_per_s": 40.0, "peak_gib": 30.0},
                                         {"precision": "fp16 autocast, NCHW", "images_per_s": 100.0, "peak_gib": 18.0},
                                         {"precision": "bf16 autocast, channels_last", "images_per_s": 160.0,
                                          "peak_gib": 17.0}],
                                "bf16_cl_over_fp16": 1.6, "goal_met": True},
        "prediction": {"error": "RuntimeError: boom", "traceback": "..."},
    }
    lines = "\n".join(gpu_check.markdown(results, {"date": "d", "machine": "m", "command": "c", "dry_run": False}))
    assert "Steps that failed (tracebacks in gpu_check.json): prediction." in lines
    assert "| bf16 autocast, channels_last | 160.0 | 17.0 |" in lines
    assert "1.60x (goal >= 1.5x: met)" in lines
