"""Start-up time of every ``ecgflow`` command, beside the heavy libraries' own import times.

For each command of the typer app (``ecgflow.cli.app``, its groups included) the modules its
function imports when it runs (every ``import`` / ``from … import`` in the command function's
body, read with ``ast``: lazy imports the CLI does per command) are imported in a fresh
interpreter, as whole processes, best of ``--repeat`` runs:

- import ms: ``python -X importtime -c "import ecgflow.cli, <modules>"``, the cumulative times of
  the top-level imports after the interpreter's own start-up, summed;
- wall ms: ``python -c "import ecgflow.cli, <modules>"`` minus a bare ``python -c pass``;
- heaviest: the 5 third-party packages with the most own import time (self time summed over
  their modules, so nothing is counted twice);
- ``--help`` ms: wall time of ``ecgflow <command> --help`` (the whole process).

Reference rows, measured the same way: a bare interpreter, ``import torch``, ``scipy.signal``,
``pandas``, ``mlflow`` and ``kfp``. Prints a table; writes benchmarks/results/startup.json.
Usage:
    python benchmarks/startup.py [--repeat 3] [--only ingest,preprocess]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer
from typer.main import get_command_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK = "--ecgflow-startup-mark--"
REFERENCES = ("torch", "scipy.signal", "pandas", "mlflow", "kfp")
TOP_PACKAGES = 5


@dataclass
class Row:
    """One measured command (or reference import)."""

    name: str
    modules: list[str]
    import_ms: float = 0.0
    wall_ms: float = 0.0
    help_ms: float | None = None
    heaviest: list[tuple[str, float]] = field(default_factory=list)


def commands(app: typer.Typer, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Callable]]:
    """(command path as typed, e.g. 'services up'; its function) for every command of ``app``."""
    for info in app.registered_commands:
        if info.callback is None:
            continue
        name = info.name or get_command_name(info.callback.__name__)
        yield " ".join((*prefix, name)), info.callback
    for group in app.registered_groups:
        if group.typer_instance is not None and group.name:
            yield from commands(group.typer_instance, (*prefix, group.name))


def imported_modules(function: Callable) -> list[str]:
    """Every absolute module the function's body imports (in order, without repeats)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found.extend(_submodules(node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return list(dict.fromkeys(found))


def _submodules(package: str, names: list[str]) -> list[str]:
    """``package.name`` for each name that is a submodule (``from ecgflow import registry``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [f"{package}.{n}" for n in names if importlib.util.find_spec(f"{package}.{n}")]


def _elapsed_ms(argv: list[str]) -> float:
    """Wall time of one process, ms; it must succeed."""
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - started) * 1000.0


def best_wall_ms(argv: list[str], repeat: int) -> float:
    """The fastest of ``repeat`` runs of a process, ms."""
    return min(_elapsed_ms(argv) for _ in range(repeat))


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """(ms of the top-level imports after MARK, summed; own ms per top-level package)."""
    total_us = 0
    own_us: dict[str, int] = defaultdict(int)
    lines = stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == MARK), None)
    if start is None:
        raise RuntimeError("importtime output without the start mark")
    for line in lines[start + 1 :]:
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        self_us, cumulative_us = parts[0].removeprefix("import time:").strip(), parts[1].strip()
        if not (self_us.isdigit() and cumulative_us.isdigit()):
            continue  # the header line
        name = parts[2][1:]  # one separating space, then two spaces per nesting level
        depth = len(name) - len(name.lstrip(" "))
        if depth == 0:
            total_us += int(cumulative_us)
        own_us[name.strip().split(".")[0]] += int(self_us)
    return total_us / 1000.0, {k: v / 1000.0 for k, v in own_us.items()}


def third_party(package: str) -> bool:
    """Installed, and neither the standard library (nor ``_sysconfigdata``) nor ecgflow.

    importtime also lists imports that failed (``org`` from ``pickle``'s Jython probe).
    """
    if importlib.util.find_spec(package) is None:
        return False
    stdlib = package.lstrip("_") in sys.stdlib_module_names or package.startswith("_sysconfig")
    return package != "ecgflow" and not stdlib


def measure_imports(row: Row, repeat: int, bare_ms: float) -> None:
    """Fill ``row``'s import ms, wall ms and heaviest packages (best of ``repeat`` each)."""
    statement = f"import {', '.join(row.modules)}" if row.modules else "pass"
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(repeat):
        code = f"import sys; print({MARK!r}, file=sys.stderr, flush=True); {statement}"
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        parsed = parse_importtime(proc.stderr)
        if best is None or parsed[0] < best[0]:
            best = parsed
    assert best is not None
    row.import_ms = best[0]
    packages = sorted(
        ((k, v) for k, v in best[1].items() if third_party(k) and v >= 0.5), key=lambda kv: -kv[1]
    )
    row.heaviest = [(k, round(v, 1)) for k, v in packages[:TOP_PACKAGES]]
    row.wall_ms = best_wall_ms([sys.executable, "-c", statement], repeat) - bare_ms


def ecgflow_argv() -> list[str]:
    """The installed ``ecgflow`` script beside this interpreter, else ``python -m ecgflow.cli``."""
    script = Path(sys.executable).with_name("ecgflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ecgflow.cli"]


def table(rows: list[Row], references: list[Row]) -> str:
    """A Markdown table: commands first, then the reference imports."""
    head = (
        "| command | import ms | wall ms (− bare python) | `--help` ms | heaviest third-party "
        "packages (own ms) |\n|---|---|---|---|---|"
    )
    lines = [head]
    for row in [*rows, *references]:
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in row.heaviest) or "–"
        help_ms = "–" if row.help_ms is None else f"{row.help_ms:.0f}"
        lines.append(
            f"| {row.name} | {row.import_ms:.0f} | {row.wall_ms:.0f} | {help_ms} | {heavy} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--only", help="comma-separated commands (default: all)")
    args = parser.parse_args()

    from ecgflow.cli import app

    load_before = os.getloadavg()
    bare_ms = best_wall_ms([sys.executable, "-c", "pass"], args.repeat)
    cli = ecgflow_argv()
    top = Row(name="ecgflow --help", modules=["ecgflow.cli"])
    measure_imports(top, args.repeat, bare_ms)
    top.help_ms = best_wall_ms([*cli, "--help"], args.repeat)
    rows = [top]
    wanted = None if args.only is None else {c.strip() for c in args.only.split(",")}
    for name, function in commands(app):
        if wanted is not None and name not in wanted:
            continue
        row = Row(name=f"ecgflow {name}", modules=["ecgflow.cli", *imported_modules(function)])
        measure_imports(row, args.repeat, bare_ms)
        row.help_ms = best_wall_ms([*cli, *name.split(), "--help"], args.repeat)
        rows.append(row)
        print(f"{row.name}: {row.import_ms:.0f} ms", file=sys.stderr, flush=True)
    # the bare interpreter's wall time is absolute; every other row is relative to it
    references = [Row(name="bare python (-c pass)", modules=[], wall_ms=bare_ms)]
    for module in REFERENCES:
        ref = Row(name=f"import {module}", modules=[module])
        measure_imports(ref, args.repeat, bare_ms)
        references.append(ref)

    print(table(rows, references))
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "startup.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "repeat": args.repeat,
                "bare_python_ms": bare_ms,
                "commands": [asdict(r) for r in rows],
                "references": [asdict(r) for r in references],
            },
            indent=2,
        )
    )
    print(f"\nload average {load_before[0]:.2f} → {machine['load_average_after'][0]:.2f}; {out}")


if __name__ == "__main__":
    main()
