"""Where local runs keep their outputs, MLflow store included."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".ecgflow"


def ecgflow_home() -> Path:
    """``$ECGFLOW_HOME`` or ``./.ecgflow``."""
    return Path(os.environ.get("ECGFLOW_HOME", DEFAULT_HOME)).resolve()
