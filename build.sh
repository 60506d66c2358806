#!/usr/bin/env bash
# Build the Docker image: ./build.sh [TAG]   (default dfdc-pipeline:latest)
# Proxy settings of the calling shell are passed to the build so pip works behind a proxy.
set -euo pipefail
cd "$(dirname "$0")"
tag="${1:-dfdc-pipeline:latest}"
args=()
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!var:-}" ]; then
        args+=(--build-arg "$var=${!var}")
    fi
done
docker build "${args[@]}" -t "$tag" .
echo "built $tag; run it with:"
echo "  docker run --gpus all --ipc=host -v /path/to/DATA_ROOT:/dataset -v \$PWD/weights:/workspace/weights -it $tag"
