"""Packaging: the top-level components/ and pipelines/ install as ecgflow.components / .pipelines.

They are never installed as top-level packages of those generic names. Everything else is
declared in pyproject.toml; only the package list and its folders live here, because the mapped
folders' sub-packages must be found under their installed names (setuptools' declarative
``find`` cannot add a prefix). Each component's ``tests`` package stays out of the wheel.
"""

from setuptools import find_packages, setup

#: installed package → repository folder
MAPPED = {"ecgflow.components": "components", "ecgflow.pipelines": "pipelines"}


def packages() -> list[str]:
    """The packages under src/, then the mapped folders' under their installed names."""
    found = find_packages("src", include=["ecgflow", "ecgflow.*"])
    for name, folder in MAPPED.items():
        below = find_packages(folder, exclude=["tests", "*.tests", "*.tests.*"])
        found += [name, *(f"{name}.{package}" for package in below)]
    return found


setup(packages=packages(), package_dir={"": "src", **MAPPED})
