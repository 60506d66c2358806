#!/usr/bin/env bash
# Fetch and verify released weights (size + sha256), resuming partial downloads.
#   ./download_weights.sh [DEST]                              the DFDC winner's seven B7 checkpoints
#   ./download_weights.sh [DEST] --imagenet tf_efficientnet_b7_ns   ImageNet weights for configs/b7.json
#   ./download_weights.sh [DEST] --kinetics r3d_18           Kinetics-400 weights of a torchvision video network
#   ./download_weights.sh [DEST] --verify-only                check what is there, fetch nothing
# DEST defaults to $WEIGHTS_DIR, else weights/ in this repository. Exit code 0: all present and
# verified; 2: bad option, offline, checksum mismatch or a transfer cut off (the message says which).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$here
source "$here/scripts/python_env.sh"

exec "$python" -m models.download_weights "$@"
