"""Parameters of the eval stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class EvalParams(Params):
    """Parameters of the eval stage; invalid values raise EcgflowError."""

    split: Literal["test", "val", "all"] = Field("test", description="what to evaluate")
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples for the 95 % CIs")
    seed: int = Field(0, description="bootstrap seed")
    batch_size: int = Field(256, ge=1)
    plots: bool = Field(True, description="write PNG plots")
    experiment: str = Field("ecgflow", description="MLflow experiment")
    challenge_weights: Path | None = Field(
        None,
        description="the PhysioNet/CinC Challenge weights.csv (2020 or 2021) for the CinC metric "
        "(default: the ingest folder's raw/weights.csv)",
    )

    _as_ecgflow_error = raises_ecgflow_error("eval", "eval")
