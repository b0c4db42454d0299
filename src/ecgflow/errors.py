"""The project's exception types.

Anything a user can cause (a bad file, a bad config value, a bad request) raises
:class:`EcgflowError` with a message naming the file or field and what was expected.
The CLI prints it without a traceback; HTTP endpoints answer 4xx with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class EcgflowError(Exception):
    """A problem the user can fix: bad input, bad configuration, a missing file."""


class RecordError(EcgflowError):
    """One ECG record cannot be used; the message says which file and why.

    Stages catch it per record and list the record as rejected instead of stopping.
    """


def describe_validation_error(exc: ValidationError, root: str = "") -> str:
    """One ``field.path: problem`` per pydantic error, joined by ``; `` (``root`` for the model)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or root}: "
        f"{err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def raises_ecgflow_error(what: str) -> Any:
    """A pydantic wrap validator: invalid ``what`` parameters raise :class:`EcgflowError`.

    Declare it last in each model's body (``_as_ecgflow_error = raises_ecgflow_error("split")``)
    so it wraps that model's own validators; inherited from a base it would not.
    """
    from pydantic import ValidationError, model_validator

    def wrap(cls: type, data: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            problems = describe_validation_error(exc, root=what)
            raise EcgflowError(f"invalid {what} parameters: {problems}") from None

    return model_validator(mode="wrap")(classmethod(wrap))  # type: ignore[arg-type]
