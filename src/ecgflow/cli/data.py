"""Preparing data: ingest, label, split, preprocess, build-instructions, render-images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ecgflow.cli.common import console, run_action
from ecgflow.cli.options import ParamsBuilder, stage_options
from ecgflow.errors import EcgflowError
from ecgflow.params import (
    BuildInstructionsParams,
    IngestParams,
    LabelParams,
    PreprocessParams,
    RenderParams,
    SplitParams,
)

commands = typer.Typer()


@commands.command()
@stage_options(IngestParams)
def ingest(
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[IngestParams],
) -> None:
    """Copy a dataset's records into OUT with records.parquet, rejected.parquet, manifest.json."""
    from ecgflow.stages.ingest import ingest as run_ingest

    def action() -> None:
        result = run_ingest(params(), out)
        console.print(
            f"ingested {result.dataset}: [green]{result.accepted} accepted[/], "
            f"{len(result.rejected)} rejected → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command()
@stage_options(LabelParams)
def label(
    records: Annotated[Path, typer.Option(help="ingest output folder (records.parquet)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[LabelParams],
) -> None:
    """Write labels.parquet (one 0/1 column per label) and label_def.json."""
    from ecgflow.stages.label import label as run_label

    def action() -> None:
        result = run_label(params(), records, out)
        console.print(
            f"labelled {result.n_records} records with {len(result.labels)} labels "
            f"({escape(result.label_set)}); {result.n_empty} without any → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command()
@stage_options(SplitParams, aliases={"use_strat_fold": "--strat-fold"})
def split(
    records: Annotated[Path, typer.Option(help="ingest output folder (records.parquet)")],
    labels: Annotated[Path, typer.Option(help="label output folder (labels.parquet)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[SplitParams],
) -> None:
    """Write a patient-disjoint split.parquet (record_id, split, fold) and split_report.json."""
    from ecgflow.stages.split import split as run_split

    def action() -> None:
        result = run_split(params(), records, labels, out)
        sizes = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        console.print(f"split ({result.method}): {sizes} → {escape(str(out))}", highlight=False)

    run_action(action)


@commands.command()
@stage_options(PreprocessParams)
def preprocess(
    records: Annotated[Path, typer.Option(help="ingest output folder (records.parquet)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[PreprocessParams],
    split: Annotated[
        Path | None, typer.Option(help="split output folder (omit with --like: split 'all')")
    ] = None,
    like: Annotated[
        Path | None, typer.Option(help="reuse every parameter of an earlier preprocess output")
    ] = None,
) -> None:
    """Resample, filter, normalise and cut records into per-split [N, C, T] .npy shards."""
    from ecgflow.stages.preprocess import preprocess as run_preprocess

    def action() -> None:
        settings = params()
        if split is None and like is None:
            raise EcgflowError("--split is required unless --like prepares an external set")
        result = run_preprocess(settings, records, split, out, like=like)
        sizes = ", ".join(f"{k} {v}" for k, v in result.n_samples.items())
        console.print(
            f"preprocessed: {sizes} samples; {len(result.rejected)} rejected → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command(name="build-instructions")
@stage_options(BuildInstructionsParams, aliases={"noise_questions_per_record": "--noise-questions"})
def build_instructions(
    records: Annotated[Path, typer.Option(help="ingest output folder (records.parquet)")],
    labels: Annotated[Path, typer.Option(help="label output folder (labels.parquet)")],
    splits: Annotated[Path, typer.Option(help="split output folder (split.parquet)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[BuildInstructionsParams],
    qa: Annotated[
        list[Path] | None, typer.Option(help="ECG-QA JSON file (repeatable), matched by ecg_id")
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option(
            help="export output folder (model.onnx): its per-label probabilities join each "
            "record's evidence"
        ),
    ] = None,
) -> None:
    """Write LLaVA-style question/answer instructions per record (train.json, val.json)."""
    from ecgflow.stages.build_instructions import build_instructions as run_build

    def action() -> None:
        counts = run_build(params(), records, labels, splits, out, qa, classifier)
        console.print(
            f"instructions: train {counts['train_instructions']}, val "
            f"{counts['val_instructions']} ({counts['held_out_records']} test records held "
            f"out, {counts['skipped']} skipped) → {escape(str(out))}",
            highlight=False,
        )

    run_action(action)


@commands.command(name="render-images")
@stage_options(RenderParams)
def render_images(
    data: Annotated[Path, typer.Option(help="preprocess output folder (preprocess.json)")],
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[RenderParams],
    records: Annotated[
        Path | None, typer.Option(help="ingest folder: reports and raw paths for llava.json")
    ] = None,
) -> None:
    """Render paper ECG images (3×4 + rhythm strip) and GAF/RP/MTF images, plus llava.json."""
    from ecgflow.stages.render_images import render_images as run_render

    def action() -> None:
        result = run_render(params(), data, out, records_dir=records)
        console.print(
            f"rendered: {result.n_paper} paper, {result.n_signal} signal images, "
            f"{result.n_llava} llava entries; {len(result.rejected)} rejected "
            f"→ {escape(str(out))}",
            highlight=False,
        )

    run_action(action)
