"""Training: train-clip, finetune-classifier, finetune-gem (shared optimisation options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action
from ecgflow.cli.options import TRAIN_ALIASES, ParamsBuilder, stage_options
from ecgflow.params import FinetuneGemParams, FinetuneParams, TrainClipParams

commands = typer.Typer()


@commands.command(name="train-clip")
@stage_options(
    TrainClipParams,
    aliases={
        **TRAIN_ALIASES,
        "model.encoder.kind": "--encoder",
        "model.encoder.width": "--width",
        "model.encoder.depth": "--depth",
        "model.embed_dim": "--embed-dim",
        "model.text.path": "--text-model",
        "model.text.freeze_layers": "--freeze-layers",
    },
)
def train_clip(
    data: Annotated[Path, typer.Option(help="preprocess output (train and val splits)")],
    records: Annotated[Path, typer.Option(help="ingest output (report texts)")],
    out: Annotated[Path, typer.Option(help="output folder (model, checkpoints, metrics)")],
    params: ParamsBuilder[TrainClipParams],
    resume: Annotated[bool, typer.Option(help="continue from out/checkpoints")] = False,
) -> None:
    """Contrastive ECG–report pre-training; N > 1 processes run under torchrun (DDP)."""
    from ecgflow.stages.train_clip import train_clip as run_train_clip

    def action() -> None:
        metrics = run_train_clip(params(), data, records, out, resume=resume)
        best = metrics["best"]
        console.print(
            f"train-clip: best epoch {metrics['best_epoch']}, mean recall "
            f"{best.get('mean_recall', float('nan')):.3f} → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command(name="finetune-classifier")
@stage_options(
    FinetuneParams,
    aliases={
        **TRAIN_ALIASES,
        "encoder.kind": "--architecture",
        "encoder.width": "--width",
        "encoder.depth": "--depth",
    },
)
def finetune_classifier(
    data: Annotated[Path, typer.Option(help="preprocess output (train and val splits)")],
    labels: Annotated[Path, typer.Option(help="label output (labels.parquet, label_def.json)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[FinetuneParams],
    encoder: Annotated[
        Path | None,
        typer.Option(help="train-clip output whose ECG encoder to start from (--pretrained)"),
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue from out/checkpoints")] = False,
) -> None:
    """Multi-label classifier (BCE + pos_weight), from scratch or from the CLIP encoder."""
    from ecgflow.stages.finetune_classifier import finetune_classifier as run_finetune

    def action() -> None:
        metrics = run_finetune(params(), encoder, data, labels, out, resume=resume)
        best = metrics["best"]
        console.print(
            f"finetune-classifier: best epoch {metrics['best_epoch']}, val macro AUROC "
            f"{best.get('macro_auroc', float('nan')):.3f} → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command(name="finetune-gem")
@stage_options(FinetuneGemParams, aliases={**TRAIN_ALIASES, "model.lm": "--lm"})
def finetune_gem(
    encoder: Annotated[Path, typer.Option(help="train-clip output (the signal tower)")],
    data: Annotated[
        Path, typer.Option(help="preprocess output (train/val; see --help of the stage)")
    ],
    instructions: Annotated[Path, typer.Option(help="build-instructions output")],
    out: Annotated[Path, typer.Option(help="output folder (model/, checkpoints, metrics)")],
    params: ParamsBuilder[FinetuneGemParams],
    images: Annotated[
        Path | None, typer.Option(help="render-images output: turns the image tower on")
    ] = None,
    resume: Annotated[bool, typer.Option(help="continue from out/checkpoints")] = False,
) -> None:
    """GEM: the ECG multimodal LLM (signal/lead/image towers → LoRA LM), on the training core."""
    from ecgflow.stages.finetune_gem import GemPaths
    from ecgflow.stages.finetune_gem import finetune_gem as run_finetune_gem

    def action() -> None:
        settings = params({"model": {"image": True}} if images is not None else None)
        paths = GemPaths(encoder, data, instructions, images, out)
        metrics = run_finetune_gem(settings, paths, resume=resume)
        best = metrics["best"]
        console.print(
            f"finetune-gem: best epoch {metrics['best_epoch']}, val QA accuracy "
            f"{best.get('qa_accuracy', float('nan')):.3f}, balanced "
            f"{best.get('qa_balanced_accuracy', float('nan')):.3f} → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)
