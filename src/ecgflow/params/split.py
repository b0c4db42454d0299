"""Parameters of the split stage."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params

_SUM_TOLERANCE = 1e-6


class SplitParams(Params):
    """Parameters of the split stage.

    Invalid values raise :class:`EcgflowError` naming the field (not pydantic's error type).
    """

    ratios: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1),
        description="train, val, test fractions of the records (>= 0, sum 1); "
        "also accepts 'a,b,c'; not used when PTB-XL's strat_fold is honoured",
    )
    folds: int | None = Field(
        None, description="K cross-validation folds over train + val (fold 1..K), or none"
    )
    seed: int = Field(0, ge=0, description="seed of every random choice")
    use_strat_fold: bool = Field(
        True, description="honour PTB-XL's strat_fold when every record has one"
    )

    @field_validator("ratios", mode="before")
    @classmethod
    def _parse_ratios(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("ratios")
    @classmethod
    def _check_ratios(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not math.isfinite(r) or r < 0 for r in value):
            raise ValueError(f"each of train, val, test must be >= 0, got {value}")
        if abs(sum(value) - 1.0) > _SUM_TOLERANCE:
            raise ValueError(f"train, val, test must sum to 1, got {value} (sum {sum(value):g})")
        return value

    @field_validator("folds")
    @classmethod
    def _check_folds(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise ValueError(f"must be at least 2 (or unset for no folds), got {value}")
        return value

    _as_ecgflow_error = raises_ecgflow_error("split", "split")
