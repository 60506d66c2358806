#!/usr/bin/env bash
# The GPU check (see bench/gpu_check.py): B7 training precisions, a torchrun/NCCL/SyncBatchNorm run
# through train.sh, 7 x B7 prediction on 10 s 1080p clips against the winner preset, GPU preprocessing;
# writes the "GPU check" section of docs/benchmarks.md. Under 10 minutes on one H100/H200.
#   bench/gpu_check.sh [--dry-run] [--out DIR] [--docs FILE] [--workers N]
# --dry-run: every step on the CPU at a tiny size (checks the script; a few minutes on 2 cores).
# Needs the packages of requirements.txt (.venv/bin/python when present, else $PYTHON, else python3)
# and, without --dry-run, a CUDA GPU; no internet. Exit code 0 all steps ran, 1 a step failed, 2 the
# machine lacks a package or the GPU.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/python_env.sh"
[[ -n ${PYTHON:-} && ! -x "$repo_root/.venv/bin/python" ]] && python=$PYTHON
exec "$python" "$repo_root/bench/gpu_check.py" "$@"
