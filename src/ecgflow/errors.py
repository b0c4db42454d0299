"""The project's exception types.

Anything a user can cause (a bad file, a bad config value, a bad request) raises
:class:`EcgflowError` with a message naming the file or field and what was expected.
The CLI prints it without a traceback; HTTP endpoints answer 4xx with it.

A bad parameter is named both ways: by its path in the pipeline config
(``finetune.train.epochs``) and by the option of its stage command (``--train-epochs``);
:func:`cli_flag` is the one naming rule between the two. A check across fields (a model
validator) names the field it blames first in its message (``bandpass: need low < high``):
that field then gets its own path and option too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: a model validator's message that starts with the field it blames: ``bandpass: ...``
_BLAMED = re.compile(r"^([a-z_][a-z0-9_]*)(:\s*|\s)")
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


def _model_at(model: Any, names: Sequence[str]) -> Any:
    """The params model at a field path of ``model`` (None where the path leaves the models)."""
    for name in names:
        field = getattr(model, "model_fields", {}).get(name)
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(getattr(model, "model_fields", None), dict) else None


def _blamed_field(model: Any, names: Sequence[str], message: str) -> tuple[str, str] | None:
    """(field, rest of the message) when a model-level ``message`` starts with a field's name."""
    match = _BLAMED.match(message)
    owner = _model_at(model, names) if match else None
    if match is None or owner is None or match.group(1) not in owner.model_fields:
        return None
    rest = message[match.end() :] if match.group(2).startswith(":") else message
    return match.group(1), rest


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def validation_problems(
    exc: ValidationError, root: str = "", flags: bool = False, model: Any = None
) -> list[str]:
    """One ``path: problem (got value)`` per pydantic error.

    ``root`` prefixes every path (a config section, or the model's name for model-level
    errors). With ``flags`` each path also names its stage option (:func:`cli_flag`); in a
    whole pipeline config the first part of a path is the section, not part of the option.
    ``model`` (the validated class) lets a model validator's error name the field it blames.
    """
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        names = field_path(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        blamed = None
        if model is not None and err["type"] == "value_error" and len(names) == len(loc):
            blamed = _blamed_field(model, names, message)
        if blamed is not None:
            loc, names, message = [*loc, blamed[0]], [*names, blamed[0]], blamed[1]
        path = ".".join([root, *loc] if root and loc else loc) or root
        if flags and not root:
            names = names[1:]  # a whole config: the section is not part of the option
        where = f"{path} / {cli_flag(names)}" if flags and names else path
        if err["type"] != "missing" and loc and not isinstance(value, dict | list):
            message += f" (got {_shown(value)})"
        problems.append(f"{where}: {message}")
    return problems


def describe_validation_error(
    exc: ValidationError, root: str = "", flags: bool = False, model: Any = None
) -> str:
    """:func:`validation_problems` joined by ``; ``."""
    return "; ".join(validation_problems(exc, root, flags, model))


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
            problems = describe_validation_error(exc, root=section or what, flags=True, model=cls)
            raise EcgflowError(f"invalid {what} parameters: {problems}") from None
        finally:
            _DEPTH.reset(token)

    return model_validator(mode="wrap")(classmethod(wrap))  # type: ignore[arg-type]
