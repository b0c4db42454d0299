"""Import contract of the commands: what each may load at start-up (benchmarks/startup.py times it).

Every check runs a fresh interpreter that really imports what the command imports (the
``import`` statements in its function in ``ecgflow.cli``) and reports ``sys.modules``.
"""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
import textwrap

import pytest
from typer.main import get_command_name

from ecgflow.cli import app

#: the model, tracking and orchestration stacks: none of the data stages needs them
MODEL_STACK = ("torch", "mlflow", "kfp", "onnxruntime", "transformers")
#: also kept out of ingest and preprocess, the stages every run starts with
DATA_HEAVY = ("scipy.signal", "scipy.fft", "pandas", "wfdb", "boto3", "requests")
#: scipy.signal takes ~0.5-0.8 s to import; build-instructions loads it when it measures rhythm
SIGNAL = ("scipy.signal",)
#: command → (stage module it must import, modules it must not load)
DATA_STAGES = {
    "ingest": ("ecgflow.stages.ingest", MODEL_STACK + DATA_HEAVY),
    "preprocess": ("ecgflow.stages.preprocess", MODEL_STACK + DATA_HEAVY),
    "label": ("ecgflow.stages.label", MODEL_STACK + SIGNAL),
    "split": ("ecgflow.stages.split", MODEL_STACK + SIGNAL),
    "render-images": ("ecgflow.stages.render_images", MODEL_STACK + SIGNAL),
    "build-instructions": ("ecgflow.stages.build_instructions", MODEL_STACK + SIGNAL),
}
#: not loaded by ``ecgflow --help`` nor by any ``ecgflow <command> --help``
HELP_FORBIDDEN = ("torch", "scipy", "pandas", "mlflow", "kfp", "numpy", "pyarrow")


def _loaded_after(code: str) -> set[str]:
    """Names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _command_imports(name: str) -> list[str]:
    """The absolute modules imported in the body of ``ecgflow <name>``'s function."""
    (function,) = [
        c.callback
        for c in app.registered_commands
        if c.callback is not None and (c.name or get_command_name(c.callback.__name__)) == name
    ]
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    found += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return [m for m in dict.fromkeys(found) if m]


def _offending(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden packages (or their submodules) found in ``loaded``."""
    return sorted(f for f in forbidden if any(m == f or m.startswith(f + ".") for m in loaded))


@pytest.mark.parametrize("command", sorted(DATA_STAGES))
def test_a_data_stage_command_starts_without_the_heavy_stacks(command: str) -> None:
    stage, forbidden = DATA_STAGES[command]
    modules = _command_imports(command)
    assert stage in modules, f"ecgflow {command} no longer imports {stage}: update the contract"
    loaded = _loaded_after(f"import ecgflow.cli, {', '.join(modules)}")
    assert stage in loaded
    assert _offending(loaded, forbidden) == []


def test_the_signal_transform_imports_neither_scipy_signal_nor_scipy_fft() -> None:
    """scipy.signal takes 0.6-0.8 s to import: preprocess's transforms use NumPy's own."""
    loaded = _loaded_after("import ecgflow.stages.preprocess, ecgflow.signal.transform")
    assert "ecgflow.signal.transform" in loaded
    assert _offending(loaded, ("scipy.signal", "scipy.fft", "pandas", "torch")) == []


#: what ecgflow.params and ecgflow.config may not load: they sit below every stage
PARAMS_FORBIDDEN = (*MODEL_STACK, "scipy", "pandas", "numpy", "pyarrow")


def test_the_pipeline_config_loads_no_stage_and_no_heavy_library() -> None:
    """``ecgflow run``, ``compile`` and ``submit`` read it before anything else."""
    loaded = _loaded_after("import ecgflow.config; ecgflow.config.PipelineConfig()")
    assert "ecgflow.params.finetune" in loaded  # its sections are the params models
    assert sorted(m for m in loaded if m.startswith("ecgflow.stages")) == []
    assert _offending(loaded, PARAMS_FORBIDDEN) == []


def test_the_params_load_only_pydantic() -> None:
    """Every stage's parameters, built with their defaults: no stage, no NumPy or pandas."""
    loaded = _loaded_after(
        "import ecgflow.params as p\nfor name in p.__all__:\n"
        "    m = getattr(p, name)\n    m() if isinstance(m, type) and name != 'Params' else None"
    )
    ours = sorted(m for m in loaded if m.startswith("ecgflow."))
    allowed = ("ecgflow.params", "ecgflow.errors", "ecgflow.images")
    assert [m for m in ours if not m.startswith(allowed)] == []
    assert _offending(loaded, PARAMS_FORBIDDEN) == []


def test_help_of_every_command_loads_no_stage_and_no_heavy_library() -> None:
    """``ecgflow --help`` and each ``ecgflow <command> --help``, run for real in one process."""
    code = textwrap.dedent(
        """
        import contextlib, io
        from ecgflow.cli import app
        from typer.main import get_command
        group = get_command(app)
        paths = [[]]
        for name, command in group.commands.items():
            paths.append([name])
            paths += [[name, sub] for sub in getattr(command, "commands", {})]
        helps = {}
        for path in paths:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    app([*path, "--help"], prog_name="ecgflow")
                except SystemExit as done:
                    assert done.code == 0, (path, done.code)
            helps[" ".join(path)] = out.getvalue()
        print(json.dumps(helps))
        """
    )
    script = f"import json\n{code}\nimport sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    helps_line, modules_line = out.stdout.strip().splitlines()[-2:]
    helps, loaded = json.loads(helps_line), set(json.loads(modules_line))
    assert {"", "ingest", "preprocess", "train-clip", "services", "services up"} <= set(helps)
    assert all("Usage: ecgflow" in text for text in helps.values())
    assert "preprocess" in helps[""] and "--records" in helps["preprocess"]
    assert sorted(m for m in loaded if m.startswith("ecgflow.stages")) == []
    assert _offending(loaded, HELP_FORBIDDEN) == []
