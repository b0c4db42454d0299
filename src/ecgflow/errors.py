"""The project's exception types.

Anything a user can cause (a bad file, a bad config value, a bad request) raises
:class:`EcgflowError` with a message naming the file or field and what was expected.
The CLI prints it without a traceback; HTTP endpoints answer 4xx with it.

A bad parameter is named both ways: by its path in the pipeline config
(``finetune.train.epochs``) and by the option of its stage command (``--train-epochs``);
:func:`cli_flag` is the one naming rule between the two.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN = 60  # characters of a bad value quoted in a message
#: how many parameter models are being validated around this one (0: the outermost)
_DEPTH: ContextVar[int] = ContextVar("ecgflow_params_depth", default=0)


class EcgflowError(Exception):
    """A problem the user can fix: bad input, bad configuration, a missing file."""


class RecordError(EcgflowError):
    """One ECG record cannot be used; the message says which file and why.

    Stages catch it per record and list the record as rejected instead of stopping.
    """


def field_path(loc: Sequence[str | int]) -> list[str]:
    """The leading field names of a pydantic error location (list indices and tags dropped)."""
    names: list[str] = []
    for part in loc:
        if not isinstance(part, str) or not _FIELD.match(part):
            break
        names.append(part)
    return names


def cli_flag(path: Sequence[str]) -> str:
    """The stage command's option for a field path: ``train.batch_size`` → ``--train-batch-size``.

    Nested fields are flattened by joining their names with ``-`` (``_`` becomes ``-``).
    """
    return "--" + "-".join(part.replace("_", "-") for part in path)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def validation_problems(exc: ValidationError, root: str = "", flags: bool = False) -> list[str]:
    """One ``path: problem (got value)`` per pydantic error.

    ``root`` prefixes every path (a config section, or the model's name for model-level
    errors). With ``flags`` each path also names its stage option (:func:`cli_flag`); in a
    whole pipeline config the first part of a path is the section, not part of the option.
    """
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join([root, *loc] if root and loc else loc) or root
        names = field_path(err["loc"])
        if flags and not root:
            names = names[1:]  # a whole config: the section is not part of the option
        where = f"{path} / {cli_flag(names)}" if flags and names else path
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] != "missing" and loc and not isinstance(value, dict | list):
            message += f" (got {_shown(value)})"
        problems.append(f"{where}: {message}")
    return problems


def describe_validation_error(exc: ValidationError, root: str = "", flags: bool = False) -> str:
    """:func:`validation_problems` joined by ``; ``."""
    return "; ".join(validation_problems(exc, root, flags))


def raises_ecgflow_error(what: str | None, section: str | None = None) -> Any:
    """A pydantic wrap validator: invalid ``what`` parameters raise :class:`EcgflowError`.

    Declare it last in each model's body (``_as_ecgflow_error = raises_ecgflow_error("split")``)
    so it wraps that model's own validators; inherited from a base it would not. Only the
    outermost model raises: a model validated inside another (``finetune.train``) passes its
    errors up, so the message names the full path of every bad field (``section`` is the
    model's pipeline-config section, the start of each path). ``what=None`` never converts
    (the pipeline config: :func:`ecgflow.config.load_config` words its own message).
    """
    from pydantic import ValidationError, model_validator

    def wrap(cls: type, data: Any, handler: Callable[[Any], Any]) -> Any:
        depth = _DEPTH.get()
        token = _DEPTH.set(depth + 1)
        try:
            return handler(data)
        except ValidationError as exc:
            if depth or what is None:
                raise
            problems = describe_validation_error(exc, root=section or what, flags=True)
            raise EcgflowError(f"invalid {what} parameters: {problems}") from None
        finally:
            _DEPTH.reset(token)

    return model_validator(mode="wrap")(classmethod(wrap))  # type: ignore[arg-type]
