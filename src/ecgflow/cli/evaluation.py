"""Evaluation: eval (classifier or CLIP model) and eval-gem (GEM's question answering)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action
from ecgflow.cli.options import ParamsBuilder, stage_options
from ecgflow.params import EvalGemParams, EvalParams

commands = typer.Typer()


@commands.command(name="eval-gem")
@stage_options(EvalGemParams)
def eval_gem(
    model: Annotated[Path, typer.Option(help="GEM model folder (finetune-gem's model/)")],
    data: Annotated[Path, typer.Option(help="preprocess output holding the records asked about")],
    qa: Annotated[list[Path], typer.Option(help="ECG-QA JSON file (repeatable)")],
    out: Annotated[Path, typer.Option(help="output folder (metrics.json, predictions.json)")],
    params: ParamsBuilder[EvalGemParams],
    images: Annotated[Path | None, typer.Option(help="render-images output")] = None,
    labels: Annotated[
        Path | None, typer.Option(help="label output: also score label answers (macro F1)")
    ] = None,
) -> None:
    """QA accuracy (exact match; closed sets by likelihood) beside the label-prior baseline."""
    from ecgflow.stages.eval_gem import eval_gem as run_eval_gem

    def action() -> None:
        metrics = run_eval_gem(params(), model, data, qa, out, images, labels)
        prior = metrics["label_prior"]
        console.print(
            f"eval-gem ({metrics['n_questions']} questions): accuracy "
            f"{metrics['qa_accuracy']:.3f} (label prior {prior['qa_accuracy']:.3f}), balanced "
            f"{metrics['qa_balanced_accuracy']:.3f} (prior {prior['qa_balanced_accuracy']:.3f})"
            f" → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command(name="eval")
@stage_options(EvalParams)
def eval_(
    model: Annotated[Path, typer.Option(help="finetune-classifier or train-clip output")],
    data: Annotated[Path, typer.Option(help="preprocess output")],
    labels: Annotated[Path, typer.Option(help="label output")],
    out: Annotated[Path, typer.Option(help="output folder (metrics.json, plots/)")],
    params: ParamsBuilder[EvalParams],
    records: Annotated[
        Path | None, typer.Option(help="ingest output: CLIP texts, CinC weights.csv")
    ] = None,
) -> None:
    """Metrics (AUROC, AUPRC, F1, Fmax, CIs, CinC score / retrieval) and plots, to MLflow too."""
    from ecgflow.stages.evaluate import evaluate

    def action() -> None:
        settings = params()
        metrics = evaluate(settings, model, data, labels, out, records_dir=records)
        headline = (
            f"macro AUROC {metrics['macro_auroc']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
            if metrics["kind"] == "classifier"
            else f"mean recall {metrics['mean_recall']:.3f}, "
            f"zero-shot macro AUROC {metrics['zero_shot_macro_auroc']:.3f}"
        )
        console.print(
            f"eval ({settings.split}, {metrics['n_records']} records): {headline} "
            f"→ {escape(str(out))}",
            highlight=False,
        )

    run_action(action)
