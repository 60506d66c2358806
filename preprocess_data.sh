#!/usr/bin/env bash
# Preprocess a DFDC-style DATA_ROOT: boxes -> crops -> landmarks -> SSIM diffs -> folds.csv.
# Usage: ./preprocess_data.sh DATA_ROOT [--workers N] [--shard K/N] [--every 10] [--all-frames]
#                             [--scale auto|FACTOR] [--device auto|cpu|cuda] [--n-splits 16]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python="python3"; fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export NO_ALBUMENTATIONS_UPDATE="${NO_ALBUMENTATIONS_UPDATE:-1}"
exec "$python" -m preprocessing.pipeline "$@"
