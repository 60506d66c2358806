#!/usr/bin/env bash
# Preprocess a DATA_ROOT: boxes -> crops -> landmarks -> SSIM diffs -> folds.csv.
# DATA_ROOT holds datasets as they ship (DFDC parts, FaceForensics++ / DFD, Celeb-DF: docs/datasets.md).
# Usage: ./preprocess_data.sh DATA_ROOT [--dataset NAME[,NAME]] [--compression c23] [--workers N] [--shard K/N]
#                             [--every 10] [--all-frames] [--scale auto|FACTOR] [--device auto|cpu|cuda]
#                             [--n-splits 16] [--detector mtcnn]
#                             [--clips [--clip-size 128] [--clip-min-frames 30] [--clip-max-frames 100] ...]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$repo_root/scripts/python_env.sh"
exec "$python" -m preprocessing.pipeline "$@"
