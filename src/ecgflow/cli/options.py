"""Command-line options derived from a stage's params model: every field is an option.

:func:`stage_options` decorates a Typer command: it adds one option per field of the model,
nested models flattened, plus ``--params FILE|JSON``, and hands the command a function that
builds the validated model. Nothing about a parameter is written twice: the option's name,
default, help text and choices come from the model (:mod:`ecgflow.params`).

Naming rule (:func:`ecgflow.errors.cli_flag`): a field's option is its path in the model with
``-`` between the names and ``_`` written ``-``: ``crop_s`` → ``--crop-s``,
``train.batch_size`` → ``--train-batch-size``, ``model.encoder.width`` →
``--model-encoder-width``. A command may give a field a second, shorter name (an alias,
e.g. ``--epochs`` for ``--train-epochs``) that the three trainers share.

Values: a bool is ``--x/--no-x``; a ``Literal`` field takes one of its choices; anything else
is text the model parses (numbers, ``none`` to unset an optional field, ``a,b,c`` for a list).
Layers, lowest first: the model's defaults → ``--params`` (a JSON object, or a JSON/YAML
file) → what the command adds → the options given. An option not given keeps the layer below.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ecgflow.errors import EcgflowError, cli_flag
from ecgflow.params import deep_merge

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

#: the optimisation options' short names, shared by train-clip, finetune-classifier, finetune-gem
TRAIN_ALIASES = {
    "train.epochs": "--epochs",
    "train.batch_size": "--batch-size",
    "train.lr": "--lr",
    "train.patience": "--patience",
    "train.seed": "--seed",
    "train.device": "--device",
}
_NONE = {"none", "null"}
_PARAMS_ARG = "params_spec"


@dataclass(frozen=True, eq=False)
class Leaf:
    """One option: a (possibly nested) field of the model, with the model's default for it."""

    path: tuple[str, ...]
    info: FieldInfo
    default: Any

    @property
    def dotted(self) -> str:
        """``train.epochs``."""
        return ".".join(self.path)

    @property
    def arg(self) -> str:
        """The Python parameter name behind the option."""
        return "p__" + "__".join(self.path)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def leaves(model: type[BaseModel], default: BaseModel | None = None) -> list[Leaf]:
    """Every field of ``model`` as an option, nested models flattened, defaults from ``default``."""
    found: list[Leaf] = []
    for name, info in model.model_fields.items():
        # the field's default without building the model's validator (defer_build: start-up)
        value = (
            info.get_default(call_default_factory=True)
            if default is None
            else getattr(default, name)
        )
        sub = _submodel(info.annotation)
        if sub is not None and isinstance(value, BaseModel):
            found += [
                Leaf((name, *leaf.path), leaf.info, leaf.default) for leaf in leaves(sub, value)
            ]
        else:
            found.append(Leaf((name,), info, value))
    return found


def _args(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation)


def _optional(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in _args(annotation)


def _bare(annotation: Any) -> Any:
    """``X`` of ``X | None``."""
    if _optional(annotation):
        rest = [a for a in _args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(_bare(annotation)) in (list, tuple)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _option(leaf: Leaf, aliases: Sequence[str], panel: str) -> Any:
    """The ``Annotated[...]`` type of one generated option."""
    flag = cli_flag(leaf.path)
    annotation = leaf.info.annotation
    help_text = leaf.info.description or ""
    if _optional(annotation):
        help_text += " ('none': unset)"
    if _is_sequence(annotation):
        help_text += " (comma-separated)"
    common = {"help": help_text.strip(), "rich_help_panel": panel}
    if _bare(annotation) is bool:
        names = [f"{flag}/--no-{flag[2:]}"] + [f"{a}/--no-{a[2:]}" for a in aliases]
        shown = flag[2:] if leaf.default else f"no-{flag[2:]}"
        return Annotated[bool | None, typer.Option(*names, show_default=shown, **common)]
    bare = _bare(annotation)
    if typing.get_origin(bare) is Literal:
        return Annotated[
            bare | None,
            typer.Option(flag, *aliases, show_default=_shown(leaf.default), **common),
        ]
    metavar = {int: "INTEGER", float: "FLOAT", Path: "PATH"}.get(bare, "TEXT")
    if _is_sequence(annotation):
        metavar = "A,B,..."
    return Annotated[
        str | None,
        typer.Option(flag, *aliases, metavar=metavar, show_default=_shown(leaf.default), **common),
    ]


def _value(leaf: Leaf, raw: Any) -> Any:
    """An option's text as the model expects it (``none`` → None, ``a,b`` → a list)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text.lower() in _NONE and _optional(leaf.info.annotation):
        return None
    if _is_sequence(leaf.info.annotation):
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise EcgflowError(f"{cli_flag(leaf.path)}: not a JSON list: {raw!r}") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def read_params_spec(spec: str | None) -> dict[str, Any]:
    """``--params``: a JSON object, or the path of a JSON or YAML file holding one."""
    if spec is None or not spec.strip():
        return {}
    text = spec.strip()
    if not text.startswith("{"):
        path = Path(text)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EcgflowError(
                f"--params {spec}: neither a JSON object nor a file ({exc})"
            ) from None
    try:
        import yaml

        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise EcgflowError(f"--params: not valid JSON or YAML ({exc})") from None
    if not isinstance(data, dict):
        raise EcgflowError(f"--params: expected a JSON object / mapping, got {type(data).__name__}")
    return data


def _nested(values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in values.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def build_params(
    model: type[M],
    spec: str | None,
    given: Mapping[Leaf, Any],
    added: Mapping[str, Any] | None = None,
) -> M:
    """Defaults ← ``--params`` ← ``added`` (by the command) ← the options given, validated."""
    options = {leaf.path: _value(leaf, raw) for leaf, raw in given.items() if raw is not None}
    data = deep_merge(deep_merge(read_params_spec(spec), added or {}), _nested(options))
    return model.model_validate(data)


class ParamsBuilder(typing.Protocol[M]):  # type: ignore[misc]
    """What a decorated command gets: call it (inside ``_run``) for the validated params."""

    def __call__(self, added: Mapping[str, Any] | None = None) -> M:
        """The params: defaults ← ``--params`` ← ``added`` ← the options given."""
        ...


def stage_options(
    model: type[BaseModel],
    aliases: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
) -> Callable[[F], F]:
    """Give a command one option per field of ``model`` (see the module docstring).

    The command declares ``params`` (a :class:`ParamsBuilder`) instead of the fields; its own
    options (input/output paths) stay as written. ``exclude`` names fields left off (dotted).
    """
    aliases = dict(aliases or {})

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "params"]
        taken = {p.name for p in own}
        generated: list[tuple[Leaf, inspect.Parameter]] = []
        for leaf in leaves(model):
            if leaf.dotted in exclude or leaf.path[0] in exclude:
                continue
            if leaf.arg in taken:
                raise ValueError(f"{func.__name__}: option {leaf.arg} defined twice")
            alias = [aliases[leaf.dotted]] if leaf.dotted in aliases else []
            panel = "Parameters" if len(leaf.path) == 1 else f"Parameters: {leaf.path[0]}.*"
            annotation = _option(leaf, alias, panel)
            parameter = inspect.Parameter(
                leaf.arg, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
            generated.append((leaf, parameter))
        spec_option = Annotated[
            str | None,
            typer.Option(
                "--params",
                metavar="FILE|JSON",
                help=f"{model.__name__} as a JSON object or a JSON/YAML file; the options "
                "above override single fields of it",
                rich_help_panel="Parameters",
            ),
        ]
        spec = inspect.Parameter(
            _PARAMS_ARG, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=spec_option
        )
        keyword_own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        parameters = keyword_own + [p for _, p in generated] + [spec]

        def command(**kwargs: Any) -> Any:
            given = {leaf: kwargs.pop(leaf.arg) for leaf, _ in generated}
            spec_text = kwargs.pop(_PARAMS_ARG)

            def builder(added: Mapping[str, Any] | None = None) -> BaseModel:
                return build_params(model, spec_text, given, added)

            return func(**kwargs, params=builder)

        command.__name__ = func.__name__
        command.__qualname__ = func.__qualname__
        command.__doc__ = func.__doc__
        command.__module__ = func.__module__
        command.__wrapped__ = func  # type: ignore[attr-defined]  # inspect.getsource: the body
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command  # type: ignore[return-value]

    return decorate
