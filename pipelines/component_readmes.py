"""Each component folder's README.md, generated from the component and its params model.

``python -m ecgflow.pipelines.component_readmes`` (``make component-readmes``) rewrites them;
``--check`` exits 1 naming every README that differs (tests/test_component_readmes.py runs it).
A README lists the component's inputs (with the pipeline input that feeds each one), its
outputs, its image and the resources the pipeline asks for it, and every field of the params
model its ``params`` input is validated against, with type, default and description. It lives
beside the pipelines because the resources and the wiring come from the compiled pipeline.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

import ecgflow.components
from ecgflow.config import PipelineConfig
from ecgflow.params import Params

#: the repository's components/ folder (ecgflow.components is installed from it)
COMPONENTS = Path(ecgflow.components.__file__).parent
#: the pipeline the wiring and resources are read from (it holds every component)
PIPELINE = "training-gem"
GENERATOR = "python -m ecgflow.pipelines.component_readmes"


@dataclass
class Wiring:
    """What the compiled pipeline gives one component: its inputs' sources and resources."""

    sources: dict[str, set[str]] = field(default_factory=dict)  # input → where it comes from
    resources: dict[str, Any] | None = None


def component_folders() -> list[Path]:
    """Every ``components/<category>/<name>/`` folder holding a ``component.py``."""
    return sorted(path.parent for path in COMPONENTS.glob("*/*/component.py"))


def load(folder: Path) -> tuple[Any, type[Params], types.ModuleType]:
    """(the component, its params model, its module) of one component folder."""
    parts = folder.relative_to(COMPONENTS).parts
    module = importlib.import_module(".".join(["ecgflow.components", *parts, "component"]))
    found = [
        value
        for value in vars(module).values()
        if hasattr(value, "component_spec") and hasattr(value, "python_func")
    ]
    if len(found) != 1:
        raise ValueError(f"{folder}: expected one component in component.py, found {len(found)}")
    model = getattr(module, "PARAMS", None)
    if not (isinstance(model, type) and issubclass(model, Params)):
        raise ValueError(f"{folder}: component.py has no PARAMS (the params input's model)")
    return found[0], model, module


def wiring(config: PipelineConfig | None = None) -> dict[str, Wiring]:
    """Component name → its inputs' sources and resources in the compiled :data:`PIPELINE`."""
    from kfp import compiler

    from ecgflow.pipelines.catalog import build_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(build_pipeline(PIPELINE, config), package_path=str(path))
        spec = next(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    executors = spec["deploymentSpec"]["executors"]
    found: dict[str, Wiring] = {}
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    # task key → the name the KFP UI shows (preprocess-2 → preprocess-gem)
    shown = {key: t["taskInfo"]["name"] for dag in dags for key, t in dag["tasks"].items()}
    for dag in dags:
        for task in dag["tasks"].values():
            component = spec["components"][task["componentRef"]["name"]]
            if "executorLabel" not in component:
                continue  # a condition's sub-DAG
            name = task["taskInfo"]["name"]
            kind = _component_name(task["componentRef"]["name"])
            entry = found.setdefault(kind, Wiring())
            container = executors[component["executorLabel"]]["container"]
            entry.resources = container.get("resources") or entry.resources
            inputs = task.get("inputs", {})
            for key, value in inputs.get("parameters", {}).items():
                entry.sources.setdefault(key, set()).add(_source(value, name, shown))
            for key, value in inputs.get("artifacts", {}).items():
                entry.sources.setdefault(key, set()).add(_artifact_source(value, shown))
    return found


def _component_name(ref: str) -> str:
    """``comp-promote-2`` → ``promote`` (KFP numbers a component's second use)."""
    base = ref.removeprefix("comp-")
    head, _, tail = base.rpartition("-")
    return head if tail.isdigit() else base


def _source(value: dict[str, Any], task: str, shown: dict[str, str]) -> str:
    """Where a task's input parameter comes from, in words."""
    if "componentInputParameter" in value:
        channel = value["componentInputParameter"].removeprefix("pipelinechannel--")
        return f"pipeline input `{channel}`"
    if "taskOutputParameter" in value:
        return f"`{shown[value['taskOutputParameter']['producerTask']]}`'s output"
    constant = value.get("runtimeValue", {}).get("constant")
    if isinstance(constant, str) and constant.startswith("{{$."):
        return f"`{constant}` (in {task})"
    return f"{json.dumps(constant)} (in {task})"


def _artifact_source(value: dict[str, Any], shown: dict[str, str]) -> str:
    """``ingest``'s ``records``, from a task's input artifact (in a branch: its channel)."""
    if "taskOutputArtifact" in value:
        output = value["taskOutputArtifact"]
        return f"`{shown[output['producerTask']]}`'s `{output['outputArtifactKey']}`"
    channel = value["componentInputArtifact"].removeprefix("pipelinechannel--")
    producer, _, key = channel.rpartition("-")
    return f"`{shown.get(producer, producer)}`'s `{key}`"


def _channel(expression: Any) -> str:
    """``{{$.inputs.parameters['pipelinechannel--train_nproc']}}`` → ``train_nproc``."""
    text = str(expression)
    if "pipelinechannel--" in text:
        return "the pipeline input `" + text.split("pipelinechannel--")[1].split("'")[0] + "`"
    return f"`{text}`"


def _type_name(annotation: Any) -> str:
    """A field's type as a reader would write it (``int | None``, ``'a' | 'b'``)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def param_rows(model: type[Params]) -> list[tuple[str, str, str, str]]:
    """(dotted field, type, default, description) of every leaf field of ``model``."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(cls: type[BaseModel], values: dict[str, Any], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            value = values.get(name)
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, value or {}, f"{prefix}{name}.")
                continue
            description = (info.description or "").replace("|", "\\|").replace("\n", " ")
            default = json.dumps(value).replace("|", "\\|")
            rows.append((f"{prefix}{name}", _type_name(annotation), default, description))

    walk(model, model().model_dump(mode="json"), "")
    return rows


def _resources(resources: dict[str, Any] | None) -> list[str]:
    if not resources:
        return ["None requested: the pod gets the namespace's defaults."]
    lines = []
    accelerator = resources.get("accelerator")
    if accelerator:
        count = accelerator.get("resourceCount", accelerator.get("count"))
        lines.append(f"- accelerator `{accelerator['resourceType']}` × {_channel(count)}")
    for key, label in (
        ("resourceCpuRequest", "CPU request"),
        ("resourceCpuLimit", "CPU limit"),
        ("resourceMemoryRequest", "memory request"),
        ("resourceMemoryLimit", "memory limit"),
    ):
        if key in resources:
            lines.append(f"- {label} `{resources[key]}`")
    return lines


def render(folder: Path, wired: dict[str, Wiring]) -> str:
    """The README.md text of one component folder."""
    component, model, module = load(folder)
    spec = component.component_spec
    entry = wired.get(spec.name, Wiring())
    function = component.python_func
    relative = folder.relative_to(COMPONENTS.parent).as_posix()
    lines = [
        f"# {spec.name}",
        "",
        f"<!-- generated by `{GENERATOR}` from {relative}/component.py and "
        f"{model.__name__}: do not edit -->",
        "",
        (spec.description or "").strip(),
        "",
        f"`{module.__name__}.{function.__name__}`: a KFP lightweight component; its unit test "
        "calls `.python_func` (`tests/`).",
        "",
        "## Inputs",
        "",
        "| input | type | default | in the pipelines |",
        "|---|---|---|---|",
    ]
    for name, given in spec.inputs.items():
        kind = str(given.type)
        if name == "params":
            kind += f" (JSON: [`{model.__name__}`](#parameters-{model.__name__.lower()}))"
        default = "—" if given.default is None else f"`{json.dumps(given.default)}`"
        sources = ", ".join(sorted(entry.sources.get(name, set()))) or "—"
        lines.append(f"| `{name}` | {kind} | {default} | {sources} |")
    lines += ["", "## Outputs", "", "| output | type |", "|---|---|"]
    for name, given in (spec.outputs or {}).items():
        lines.append(f"| `{name}` | {given.type} |")
    passthroughs = spec.task_config_passthroughs or []
    lines += [
        "",
        "## Image and resources",
        "",
        f"Image: `{spec.implementation.container.image}` (the project image; the pipeline "
        "config's `image` replaces it on every task).",
        "",
        f"Resources the `{PIPELINE}` pipeline asks for (embedded defaults):",
        "",
        *_resources(entry.resources),
    ]
    if passthroughs:
        fields = ", ".join(f"`{p.field.name}`" for p in passthroughs)
        lines += [
            "",
            f"TaskConfig passthroughs ({fields}): the component hands them to its TrainJob's "
            "nodes instead of taking them itself.",
        ]
    lines += [
        "",
        f"## Parameters: {model.__name__}",
        "",
        f"`{model.__module__}.{model.__name__}`; nested fields are dotted.",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, kind, default, description in param_rows(model):
        lines.append(f"| `{name}` | {kind} | `{default}` | {description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every component's README.md, or with ``--check`` report those that differ."""
    parser = argparse.ArgumentParser(prog=GENERATOR, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on a diff")
    args = parser.parse_args(argv)
    wired = wiring()
    stale = []
    for folder in component_folders():
        text, path = render(folder, wired), folder / "README.md"
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'differs' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
