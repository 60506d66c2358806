# CUDA-capable image of the pipeline. The torch wheels pinned in requirements.txt bundle the CUDA
# runtime (nvidia-* packages), so a plain Python base works with `docker run --gpus all` on any host
# with the NVIDIA driver and container toolkit. The image installs the SAME requirements.txt as
# `make venv`, so it runs the stack the tests ran.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    PYTHONPATH=/workspace

# libgomp: OpenMP runtime for torch and opencv (nothing here needs a compiler)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace
COPY requirements.txt /workspace/requirements.txt
RUN pip install -r requirements.txt

COPY . /workspace
RUN chmod +x /workspace/*.sh

# /dataset: DATA_ROOT (DFDC parts in, preprocessing outputs next to them)
# /workspace/weights: checkpoints written by train.sh and read by predict_submission.sh
VOLUME ["/dataset", "/workspace/weights"]
CMD ["bash"]
