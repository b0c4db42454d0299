"""The artifact contract: a file name stages exchange is spelled once, in ecgflow.artifacts."""

from __future__ import annotations

import ast
from pathlib import Path

from ecgflow import artifacts

ROOT = Path(__file__).resolve().parents[1]
#: the contract's file names (folder names such as "model" or "raw" are too common to police)
NAMES = {
    value
    for key, value in vars(artifacts).items()
    if key.isupper() and isinstance(value, str) and ("." in value or value.startswith("_"))
}

#: (file, name) still spelled out: another's config.json, and files under edit elsewhere (follow-up)
ALLOWED = {
    ("src/ecgflow/models/language_model.py", "config.json"),  # a Hugging Face folder's file
    ("src/ecgflow/models/gem_io.py", "gem.json"),
    ("src/ecgflow/models/gem_io.py", "towers.safetensors"),
    ("src/ecgflow/stages/eval_gem.py", "gem.json"),
    ("src/ecgflow/stages/eval_gem.py", "preprocess.json"),
    ("src/ecgflow/stages/finetune_gem.py", "gem.json"),
    ("src/ecgflow/stages/finetune_gem.py", "model.safetensors"),
    ("src/ecgflow/stages/finetune_gem.py", "preprocess.json"),
}


def _literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in ``path`` that is a contract file name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in NAMES
    ]


def test_the_contract_names_the_files_stages_exchange() -> None:
    assert {"preprocess.json", "records.parquet", "manifest.json", "_INCOMPLETE"} <= NAMES
    assert {"model.onnx", "thresholds.json", "label_def.json", "parity.json"} <= NAMES
    assert set(artifacts.CLASSIFIER_SIDE_FILES) < set(artifacts.SIDE_FILES)


def test_no_module_spells_a_contract_file_name() -> None:
    found = []
    for base in (ROOT / "src" / "ecgflow", ROOT / "components", ROOT / "pipelines"):
        for path in sorted(base.rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if path.name == "artifacts.py":
                continue
            found += [f"{name}:{n}: {t!r}" for n, t in _literals(path) if (name, t) not in ALLOWED]
    assert found == []


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('NAME = "preprocess.json"\n', encoding="utf-8")
    assert _literals(bad) == [(1, "preprocess.json")]
