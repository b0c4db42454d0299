"""Saving and loading a GEM model folder; :func:`load_gem` is the one call that rebuilds it.

Layout::

    gem.json               {"kind": "gem", "config": GemConfig, "lm": base LM's name,
                            "ecgflow_version": ...}
    towers.safetensors     signal, lead and image towers and the projector
    adapter/               the LoRA adapter in peft's own layout (adapter_config.json,
                           adapter_model.safetensors): loadable by ``PeftModel`` too
    tokenizer/             the base LM's tokenizer (saves converting it from GGUF again)
    calibration.json       optional: closed-set offsets (ecgflow.models.gem_calibration),
                           fitted by finetune-gem on validation questions; load_gem applies it
    evidence.json          optional: the prompts carry evidence text, measured with
    lead_quality.json      this per-lead quality model (ecgflow.models.gem_evidence)

The base LM's weights are not copied: ``config.lm`` names them (``None``: the bundled
SmolLM2-135M-Instruct), and they must exist where the model is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from pydantic import ValidationError
from safetensors import SafetensorError

import ecgflow
from ecgflow.errors import EcgflowError, describe_validation_error
from ecgflow.models.configs import GemConfig
from ecgflow.models.gem_calibration import load_calibration
from ecgflow.models.gem_evidence import load_evidence_reader

GEM_JSON = "gem.json"
TOWERS = "towers.safetensors"
ADAPTER = "adapter"
TOKENIZER = "tokenizer"
_ADAPTER_WEIGHTS = "adapter_model.safetensors"


def save_gem(folder: Path, model: Any, lm_name: str) -> None:
    """Write ``model`` (a :class:`~ecgflow.models.gem.GemModel`) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    towers = {k: v.detach().cpu().contiguous() for k, v in model.tower_state().items()}
    safetensors.torch.save_file(towers, str(folder / TOWERS))
    model.lm.save_pretrained(str(folder / ADAPTER))
    model.tokenizer.save_pretrained(str(folder / TOKENIZER))
    document = {
        "kind": "gem",
        "config": model.config.model_dump(mode="json"),
        "lm": lm_name,
        "ecgflow_version": ecgflow.__version__,
    }
    (folder / GEM_JSON).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def read_gem_config(folder: Path) -> GemConfig:
    """The validated :class:`GemConfig` of a GEM folder."""
    path = Path(folder) / GEM_JSON
    if not Path(folder).is_dir():
        raise EcgflowError(f"GEM model folder {folder} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path} does not exist (not a GEM model folder)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != "gem":
        raise EcgflowError(f"{path}: expected an object with kind 'gem'")
    try:
        return GemConfig.model_validate(document.get("config"))
    except ValidationError as exc:
        raise EcgflowError(f"{path}: {describe_validation_error(exc, root='config')}") from None


def load_gem(folder: Path, device: str | torch.device = "cpu", lm: Any = None) -> Any:
    """Rebuild the GEM model saved in ``folder`` (base LM + towers + adapter), in eval mode.

    ``lm``: the base LM already loaded (it is adapted in place), instead of loading
    ``config.lm`` again.
    """
    from peft import set_peft_model_state_dict
    from transformers import AutoTokenizer

    from ecgflow.models.gem import GemModel
    from ecgflow.models.language_model import load_language_model

    folder = Path(folder)
    config = read_gem_config(folder)
    if lm is None:
        lm, _, _ = load_language_model(config.lm, with_tokenizer=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"cannot load the tokenizer in {folder / TOKENIZER}: {exc}") from None
    model = GemModel(config, lm, tokenizer)
    towers = _read_tensors(folder / TOWERS)
    expected = set(model.tower_state())
    if set(towers) != expected:
        missing, extra = sorted(expected - set(towers)), sorted(set(towers) - expected)
        raise EcgflowError(
            f"{folder / TOWERS}: tensors do not match the config (missing {missing[:3]}, "
            f"unexpected {extra[:3]})"
        )
    try:
        model.load_state_dict(towers, strict=False)
    except RuntimeError as exc:
        raise EcgflowError(f"cannot load {folder / TOWERS}: {exc}") from None
    adapter = _read_tensors(folder / ADAPTER / _ADAPTER_WEIGHTS)
    result = set_peft_model_state_dict(model.lm, adapter)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise EcgflowError(f"{folder / ADAPTER}: unexpected adapter tensors {unexpected[:3]}")
    model.calibration = load_calibration(folder)
    model.evidence_reader = load_evidence_reader(folder)
    return model.to(device).eval()


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EcgflowError(f"{path} does not exist")
    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise EcgflowError(f"cannot read {path}: {exc}") from None
