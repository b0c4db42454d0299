"""ecgflow: a Kubeflow-native machine-learning workflow for electrocardiograms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ecgflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
