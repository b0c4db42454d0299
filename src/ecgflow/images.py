"""The project's container images: one place for their names and tags.

Built from ``images/`` by ``make images``; the pipeline config, the KFP components, the
kustomize manifests and the Helm chart all take their image references from here (tests
check that the YAML files agree).
"""

from ecgflow import __version__

REGISTRY = "ghcr.io/ecgflow"
TAG = __version__

#: CPU image every KFP component runs in (``images/base.Dockerfile``).
BASE_IMAGE = f"{REGISTRY}/ecgflow:{TAG}"
#: CUDA image of the TrainJob trainer pods (``images/train.Dockerfile``).
TRAIN_IMAGE = f"{REGISTRY}/ecgflow-train:{TAG}"
#: KServe predictor image: the classifier and the GEM server (``images/serve.Dockerfile``).
SERVE_IMAGE = f"{REGISTRY}/ecgflow-serve:{TAG}"

#: Dockerfile of each image, relative to the repository root.
DOCKERFILES = {
    BASE_IMAGE: "images/base.Dockerfile",
    TRAIN_IMAGE: "images/train.Dockerfile",
    SERVE_IMAGE: "images/serve.Dockerfile",
}
