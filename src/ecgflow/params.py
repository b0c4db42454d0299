"""The base of the stage parameter models that report bad values as user errors."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from ecgflow.errors import EcgflowError, describe_validation_error


class StageParams(BaseModel):
    """Stage parameters: unknown fields refused, invalid values raised as user errors.

    Errors read ``invalid <stage_name> parameters: field: problem`` and are
    :class:`EcgflowError` (not pydantic's type), so the CLI and the KFP components report them
    like any other user error.
    """

    model_config = ConfigDict(extra="forbid")
    stage_name: ClassVar[str] = "stage"

    @model_validator(mode="wrap")
    @classmethod
    def _as_ecgflow_error(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            problems = describe_validation_error(exc, root=cls.stage_name)
            raise EcgflowError(f"invalid {cls.stage_name} parameters: {problems}") from None
