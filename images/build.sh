#!/usr/bin/env bash
# Build ecgflow's container images with whichever engine this machine has: docker, podman or
# buildah. Image names and tags come from ecgflow.images (the one place they are defined).
#   images/build.sh [PYTHON]      (make images passes the project venv's python)
# Extra build arguments: BUILD_ARGS="--build-arg TORCH_INDEX_URL=..." images/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"

engine=""
for candidate in docker podman buildah; do
    if command -v "$candidate" >/dev/null 2>&1; then
        engine="$candidate"
        break
    fi
done
if [ -z "$engine" ]; then
    echo "make images: cannot build here: no container engine found (looked for docker, podman, buildah)." >&2
    echo "Install one of them, or build images/*.Dockerfile on a machine that has one." >&2
    exit 3
fi

"$python" -c 'from ecgflow.images import DOCKERFILES
for image, dockerfile in DOCKERFILES.items():
    print(image, dockerfile)' | while read -r image dockerfile; do
    echo "building $image from $dockerfile with $engine"
    if [ "$engine" = buildah ]; then
        # shellcheck disable=SC2086
        buildah bud ${BUILD_ARGS:-} -f "$dockerfile" -t "$image" .
    else
        # shellcheck disable=SC2086
        "$engine" build ${BUILD_ARGS:-} -f "$dockerfile" -t "$image" .
    fi
done
