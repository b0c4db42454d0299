"""The wheel installs ecgflow only: components/ and pipelines/ go in as ecgflow.components and
ecgflow.pipelines (setup.py maps the folders), never as top-level packages of those names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The file names in a wheel built (with this environment's setuptools) from a copy."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tree)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "components", "pipelines"):
        shutil.copytree(ROOT / name, tree / name, ignore=skip)
    out = tree / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(
        [*pip, "--wheel-dir", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("ecgflow-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_the_wheel_installs_only_ecgflow(wheel_files: set[str]) -> None:
    top = {name.split("/")[0] for name in wheel_files}
    assert {t for t in top if not t.endswith(".dist-info")} == {"ecgflow"}


def test_every_component_and_pipeline_is_in_the_wheel_without_its_tests(
    wheel_files: set[str],
) -> None:
    components = sorted(ROOT.glob("components/*/*/component.py"))
    assert len(components) >= 15
    for path in components:
        assert f"ecgflow/{path.relative_to(ROOT).as_posix()}" in wheel_files
    for path in (ROOT / "pipelines").glob("*.py"):
        assert f"ecgflow/pipelines/{path.name}" in wheel_files
    assert not [name for name in wheel_files if "/tests/" in name]


def test_the_installed_package_is_the_repository_folder() -> None:
    """The editable install (`make setup`) maps the same names onto components/ and pipelines/."""
    import ecgflow.components
    import ecgflow.pipelines

    assert Path(ecgflow.components.__file__).parent == ROOT / "components"
    assert Path(ecgflow.pipelines.__file__).parent == ROOT / "pipelines"
