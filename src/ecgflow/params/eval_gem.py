"""Parameters of eval-gem."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class EvalGemParams(Params):
    """Parameters of eval-gem; invalid values raise EcgflowError."""

    split: str = Field(
        "test", description="ask about records of this split only ('all': every record)"
    )
    batch_size: int = Field(16, ge=1, description="questions per scoring batch")
    max_new_tokens: int = Field(48, ge=1, le=1024, description="tokens per generated answer")
    interpret: bool = Field(
        True, description="with labels: also generate an interpretation per record and score it"
    )
    plots: bool = Field(True, description="write PNG plots")
    experiment: str = Field("ecgflow", description="MLflow experiment")

    _as_ecgflow_error = raises_ecgflow_error("eval-gem", "eval_gem")
