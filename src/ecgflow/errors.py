"""The project's exception types.

Anything a user can cause (a bad file, a bad config value, a bad request) raises
:class:`EcgflowError` with a message naming the file or field and what was expected.
The CLI prints it without a traceback; HTTP endpoints answer 4xx with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
