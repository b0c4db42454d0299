"""The ``ecgflow`` command line: one subcommand per stage, plus run / compile."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, TextIO, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from ecgflow import __version__
from ecgflow.cli.options import TRAIN_ALIASES, ParamsBuilder, stage_options
from ecgflow.errors import EcgflowError, describe_validation_error
from ecgflow.params import (
    BuildInstructionsParams,
    EvalGemParams,
    EvalParams,
    ExportParams,
    FinetuneGemParams,
    FinetuneParams,
    IngestParams,
    LabelParams,
    PreprocessParams,
    RenderParams,
    SplitParams,
    TrainClipParams,
)

app = typer.Typer(
    name="ecgflow",
    help="ECG machine-learning workflow: run stages locally, or as a Kubeflow pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# soft_wrap: messages are never broken inside a path when stderr is not a terminal
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


#: Libraries whose INFO records are chatter on a terminal (``--verbose`` shows them).
_NOISY = ("botocore", "urllib3", "s3transfer", "kfp", "mlflow", "alembic", "torchvision",
          "onnxscript", "torch.onnx", "onnx_ir", "httpx", "filelock")  # fmt: skip
_verbose = False


class _BelowError(logging.Filter):
    """Drops a logger's records below ERROR (a level would not hold: torch resets them).

    Used for torch's ONNX exporter, which notes at WARNING that torchvision is absent.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_BELOW_ERROR = _BelowError()


def _setup_logging(verbose: bool) -> None:
    """Logging for a command; progress bars on a terminal (not in CI), see ecgflow.progress."""
    global _verbose
    from ecgflow import progress

    _verbose = verbose
    level = logging.DEBUG if verbose else logging.INFO
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        fmt = "%(message)s"
    else:
        handler = _StderrHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    exporter = logging.getLogger("torch.onnx._internal.exporter._registration")
    exporter.removeFilter(_BELOW_ERROR)
    if not verbose:
        exporter.addFilter(_BELOW_ERROR)
    if progress.bars_wanted() and console.is_terminal:
        from ecgflow.run_view import Bars

        progress.install(Bars(console))


def _run(action: Callable[[], T]) -> T:
    """Run ``action``; a user error is printed without a traceback and exits with code 2."""
    try:
        return action()
    except EcgflowError as exc:
        message = str(exc)
    except ValidationError as exc:
        message = describe_validation_error(exc)
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(2)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """No callback: stages report through ``ecgflow.progress``, drawn by ``_setup_logging``."""
    yield None


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Ecgflow: ingest, label, split, preprocess, train, evaluate, export and serve ECG models."""
    _setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the ecgflow version."""
    typer.echo(__version__)


@app.command()
@stage_options(IngestParams)
def ingest(
    out: Annotated[Path, typer.Option(help="output folder")],
    params: ParamsBuilder[IngestParams],
) -> None:
    """Copy a dataset's records into OUT with records.parquet, rejected.parquet, manifest.json."""
    from ecgflow.stages.ingest import ingest as run_ingest

    def action() -> None:
        with _progress("ingest") as progress:
            result = run_ingest(params(), out, progress=progress)
        console.print(
            f"ingested {result.dataset}: [green]{result.accepted} accepted[/], "
            f"{len(result.rejected)} rejected → {escape(str(out))}",
            highlight=False,
        )

    _run(action)


@app.command()
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

    _run(action)


@app.command()
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

    _run(action)


@app.command()
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

    _run(action)


@app.command(name="build-instructions")
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
) -> None:
    """Write LLaVA-style question/answer instructions per record (train.json, val.json)."""
    from ecgflow.stages.build_instructions import build_instructions as run_build

    def action() -> None:
        counts = run_build(params(), records, labels, splits, out, qa)
        console.print(
            f"instructions: train {counts['train_instructions']}, val "
            f"{counts['val_instructions']} ({counts['held_out_records']} test records held "
            f"out, {counts['skipped']} skipped) → {escape(str(out))}",
            highlight=False,
        )

    _run(action)


@app.command(name="render-images")
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

    _run(action)


@app.command(name="train-clip")
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

    _run(action)


@app.command(name="finetune-classifier")
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

    _run(action)


@app.command(name="finetune-gem")
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

    _run(action)


@app.command(name="eval-gem")
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

    _run(action)


@app.command(name="eval")
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

    _run(action)


@app.command()
@stage_options(ExportParams)
def export(
    model: Annotated[Path, typer.Option(help="finetune-classifier output")],
    out: Annotated[Path, typer.Option(help="output folder (model.onnx, triton/, parity.json)")],
    params: ParamsBuilder[ExportParams],
    data: Annotated[
        Path | None, typer.Option(help="preprocess output for the parity check (real records)")
    ] = None,
) -> None:
    """ONNX export with a PyTorch parity check and a Triton model-repository layout."""
    from ecgflow.stages.export import export as run_export

    def action() -> None:
        result = run_export(params(), model, out, data_dir=data)
        console.print(
            f"exported {escape(str(result.onnx_path))}: parity max |Δ| "
            f"{result.max_abs_diff:.2e} over {result.n_parity_rows} rows",
            highlight=False,
        )

    _run(action)


@app.command()
def register(
    model: Annotated[
        Path, typer.Option(help="export output (model.onnx, pytorch/) or GEM folder (gem.json)")
    ],
    eval_dir: Annotated[Path, typer.Option("--eval", help="eval / eval-gem output (metrics.json)")],
    name: Annotated[
        str | None,
        typer.Option(help="registered model name (default: ecg-classifier, or ecg-gem)"),
    ] = None,
    pipeline_run: Annotated[str | None, typer.Option(help="pipeline run to tag")] = None,
) -> None:
    """Log a model (ONNX + weights, or a GEM folder) to MLflow and register a new version."""
    from ecgflow import registry

    def action() -> None:
        if (model / "gem.json").is_file():
            version = registry.register_gem(
                model, eval_dir, name=name or registry.GEM_NAME, pipeline_run=pipeline_run
            )
        else:
            version = registry.register(
                model, eval_dir, name=name or registry.DEFAULT_NAME, pipeline_run=pipeline_run
            )
        typer.echo(f"registered {version.uri} (run {version.run_id})")

    _run(action)


@app.command()
def promote(
    name: Annotated[str, typer.Option(help="registered model name")] = "ecg-classifier",
    metric: Annotated[
        str | None,
        typer.Option(help="metric compared with the champion (macro_auroc; GEM: qa_accuracy)"),
    ] = None,
    min_delta: Annotated[float, typer.Option(help="gain needed to replace the champion")] = 0.0,
    version: Annotated[str | None, typer.Option(help="candidate (default: newest)")] = None,
    allow_equal: Annotated[
        bool | None,
        typer.Option(help="a tie promotes too ('not worse'; default for GEM models)"),
    ] = None,
    lower_bound: Annotated[
        bool,
        typer.Option(help="its lower 95 % bound (eval's bootstrap) must beat the champion too"),
    ] = False,
) -> None:
    """Alias the candidate 'challenger'; move 'champion' only if it passes the gate."""
    from ecgflow import registry

    def action() -> None:
        gem = name == registry.GEM_NAME
        decision = registry.promote(
            name,
            metric=metric or ("qa_accuracy" if gem else "macro_auroc"),
            min_delta=min_delta,
            version=version,
            allow_equal=gem if allow_equal is None else allow_equal,
            lower_bound=lower_bound,
        )
        typer.echo(registry.describe(decision))

    _run(action)


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            help="export folder or GEM folder, or models:/NAME@ALIAS / models:/NAME/VERSION"
        ),
    ],
    name: Annotated[
        str, typer.Option(help="model name in the endpoint paths (GEM default: ecg-gem)")
    ] = "ecg-classifier",
    host: Annotated[str, typer.Option(help="address the REST server binds")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="REST port")] = 8080,
    grpc_port: Annotated[
        int | None, typer.Option(help="gRPC port (KServe binds every interface); off if unset")
    ] = None,
    workers: Annotated[int, typer.Option(help="server processes (each loads the model)")] = 1,
    batch_rows: Annotated[
        int,
        typer.Option(
            help="run the rows of concurrent requests together, up to this many (1: each alone; "
            "on 2 CPU cores batching measured slower, see README)"
        ),
    ] = 1,
    batch_wait_ms: Annotated[float, typer.Option(help="longest wait for a batch to fill")] = 0.0,
    threads: Annotated[
        int,
        typer.Option(
            help="onnxruntime threads per model call (0: one per core); 1 lets concurrent "
            "requests use the cores (measured fastest, see README)"
        ),
    ] = 1,
    max_body_mb: Annotated[float, typer.Option(help="largest request body in MiB")] = 64.0,
    access_log: Annotated[bool, typer.Option(help="log a line per request")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="GEM: most generated tokens")] = 256,
    timeout_s: Annotated[float, typer.Option(help="GEM: longest generation, seconds")] = 60.0,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            envvar="ECGFLOW_SERVE_LIMITS",
            help="a request limit KEY=VALUE, repeatable: max_samples, max_amplitude_mv, "
            "max_concurrent, max_inflight_mb, header_timeout_s, body_timeout_s, "
            "max_image_pixels, ... (docs/serving.md; an unknown key lists them all)",
        ),
    ] = None,
) -> None:
    """Serve a classifier export or a GEM model with KServe (V1/V2 REST, chat, /metrics)."""

    def action() -> None:
        sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported: give it nothing of ours
        from ecgflow.serving import ECGClassifier, limits_from_options, model_kind, serve_model

        body = int(max_body_mb * (1 << 20))
        limits, gem_options = limits_from_options(limit or [], max_body_bytes=body)
        served: object
        routes = None
        if model_kind(model) == "gem":
            from ecgflow.serving.chat import add_chat_routes
            from ecgflow.serving.gem import ECGGem, GemLimits

            gem_limits = GemLimits(
                **{"max_new_tokens": max_new_tokens, "timeout_s": timeout_s, **gem_options}
            )
            served = ECGGem(
                "ecg-gem" if name == "ecg-classifier" else name, model, limits, gem_limits
            )
            routes = partial(add_chat_routes, model=served)
        else:
            served = ECGClassifier(
                name, model, limits, max_batch_rows=batch_rows, max_wait_ms=batch_wait_ms,
                threads=threads,
            )  # fmt: skip
        serve_model(
            served, host=host, http_port=port, grpc_port=grpc_port, workers=workers,
            access_log=access_log, routes=routes,
        )  # fmt: skip

    _run(action)


@app.command()
def deploy(
    model: Annotated[
        str | None,
        typer.Option(help="registered version: models:/NAME@ALIAS or models:/NAME/VERSION"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="namespace (default: the kubeconfig context's)")
    ] = None,
    canary: Annotated[
        int | None, typer.Option(help="send this % of the traffic to the new model (1-99)")
    ] = None,
    rollback: Annotated[
        bool, typer.Option(help="serve the previous model again (and make it champion)")
    ] = False,
    values: Annotated[
        Path | None, typer.Option(help="the Helm values file the chart was installed with")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="chart folder (default: helm/ecgflow)")] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            envvar="ECGFLOW_ARTIFACTS_DESTINATION",
            help="the MLflow server's --artifacts-destination (s3://…), for proxied artifacts",
        ),
    ] = None,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="the version's files (s3://…) when known: with models:/NAME/N, no MLflow"
        ),
    ] = None,
    upload: Annotated[
        str | None,
        typer.Option(
            help="copy a local version's files to s3://BUCKET/PREFIX/NAME/VERSION (AWS_* "
            "credentials) and deploy from there; with --dry-run too"
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for Ready")] = 600.0,
    dry_run: Annotated[bool, typer.Option(help="print the InferenceService YAML only")] = False,
) -> None:
    """Deploy a registered model to its KServe InferenceService, wait for Ready, print the URL."""
    import yaml

    from ecgflow.deploy import deploy as run_deploy
    from ecgflow.k8s.client import current_namespace

    def action() -> None:
        chart_values = _read_values(values)
        done = run_deploy(
            model, namespace or current_namespace(), chart_values, canary=canary,
            rollback=rollback, dry_run=dry_run, artifacts_destination=artifacts_destination,
            storage=storage_uri, chart=chart, upload=upload, timeout_s=timeout,
        )  # fmt: skip
        if done.uploaded:
            size = sum(u.size for u in done.uploaded)
            typer.echo(
                f"uploaded {len(done.uploaded)} files ({size} bytes) to "
                f"{done.target.storage_uri}, each checked",
                err=True,
            )
        if dry_run:
            typer.echo(yaml.safe_dump(done.inference_service, sort_keys=False), nl=False)
            return
        meta = done.inference_service["metadata"]
        typer.echo(
            f"{meta['namespace']}/{meta['name']} serves {done.target.model_uri} "
            f"({done.target.storage_uri}); Ready\nurl: {done.url or '(no URL in status)'}"
        )

    _run(action)


def _read_values(path: Path | None) -> dict[str, object]:
    """A Helm values file as a dict (empty without one)."""
    import yaml

    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EcgflowError(f"--values {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise EcgflowError(f"--values {path}: expected a mapping at the top level")
    return data


@app.command()
def run(
    source: Annotated[
        str | None, typer.Option(help="dataset to ingest (default: the config's)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="ingest at most N records")] = None,
    label_set: Annotated[
        str | None, typer.Option(help="label set (default: the config's, 'auto')")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="pipeline config YAML")] = None,
    with_gem: Annotated[
        bool | None, typer.Option(help="also train, evaluate and register GEM")
    ] = None,
    gem_qa: Annotated[
        list[str] | None, typer.Option(help="ECG-QA JSON file for the GEM steps (repeatable)")
    ] = None,
    stack: Annotated[
        str,
        typer.Option(
            help="embedded (SQLite MLflow, local files) or services (the servers of "
            "`ecgflow services up`: runs and model versions in its MLflow, artifacts in S3)"
        ),
    ] = "embedded",
) -> None:
    """Run the training pipeline locally through kfp.local, under $ECGFLOW_HOME.

    Each step's output goes to <run>/logs/<step>.log; the terminal shows a live step table
    (a plain line per step when stdout is not a terminal) and a summary. --verbose streams
    everything kfp.local prints instead.
    """
    from ecgflow import progress
    from ecgflow.config import PipelineConfig, load_config
    from ecgflow.home import ecgflow_home
    from ecgflow.pipeline_runner import run_local
    from ecgflow.run_view import RunView, summary
    from ecgflow.step_timing import table as step_table

    def action() -> None:
        data = load_config(config).model_dump()
        if source:
            data["ingest"]["source"] = source
        if limit is not None:
            data["ingest"]["limit"] = limit
        if label_set:
            data["label"]["label_set"] = label_set
        if with_gem is not None:
            data["with_gem"] = with_gem
        if gem_qa:
            data["gem_qa"] = [str(Path(p).resolve()) for p in gem_qa]
        cfg = PipelineConfig.model_validate(data)  # command-line values are validated too
        if stack == "services":
            from ecgflow.services import load_stack, services_dir

            running = load_stack()
            if running is None:
                raise EcgflowError(
                    f"--stack services: no services recorded in {services_dir()}; "
                    "run `ecgflow services up` first"
                )
            os.environ.update(running.env())  # the steps (subprocesses) inherit it
            console.print(f"stack: MLflow {running.mlflow.url}, S3 {running.s3.url}")
        elif stack != "embedded":
            raise EcgflowError(f"--stack {stack}: expected embedded or services")
        home = ecgflow_home()
        mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        out = Console(file=sys.stdout, soft_wrap=True)  # before kfp.local's output is redirected
        if _verbose:
            console.print(f"running pipeline {cfg.name} locally; home: {escape(str(home))}")
            result = run_local(cfg, home, quiet=False)
            for name in sorted(result.outputs):
                items = sorted(result.metadata[name].items())
                meta = ", ".join(f"{k}={_plain(v)}" for k, v in items)
                typer.echo(f"{name}: {result.outputs[name]}\n    {meta}")
            out.print(step_table(result.steps, result.total_s))
        else:
            import mlflow  # noqa: F401  (it sets its loggers to INFO on import: quiet them after)

            logging.getLogger("mlflow").setLevel(logging.WARNING)
            live = out.is_terminal and progress.bars_wanted(sys.stdout)
            title = f"{cfg.name} · home {home}"
            with RunView(out, live=live, title=escape(title)) as view:
                result = run_local(cfg, home, events=view)
        for line in summary(result, mlflow_uri):
            out.print(escape(line), highlight=False)

    _run(action)


def _plain(value: object) -> object:
    """KFP hands integers back as floats; show ``200.0`` as ``200``, others to 4 digits."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else float(f"{value:.4g}")
    return value


services_app = typer.Typer(help="A local stack of real servers: SeaweedFS S3 and MLflow.")
app.add_typer(services_app, name="services")


@services_app.command("up")
def services_up() -> None:
    """Start SeaweedFS (S3) and an MLflow server on 127.0.0.1; print how to use them."""
    from ecgflow.services import services_dir, up

    running = _run(up)
    typer.echo(f"MLflow: {running.mlflow.url}\nS3:     {running.s3.url} (bucket mlflow)")
    typer.echo(f"credentials: {services_dir() / 'credentials.env'} (owner-only)")
    typer.echo("use them: ecgflow run --stack services   or   eval $(ecgflow services env)")


@services_app.command("status")
def services_status() -> None:
    """Ask each service for its health; exit 1 when one is down."""
    from ecgflow.services import status

    report = _run(status)
    if not report:
        typer.echo("no services recorded (ecgflow services up starts them)")
        raise typer.Exit(1)
    for name, (ok, why) in report.items():
        typer.echo(f"{name}: {'up' if ok else 'DOWN'} — {why}")
    if not all(ok for ok, _ in report.values()):
        raise typer.Exit(1)


@services_app.command("env")
def services_env() -> None:
    """Print ``export`` lines pointing MLflow and S3 clients at the services."""
    from ecgflow.services import load_stack

    running = load_stack()
    if running is None:
        console.print("no services recorded (ecgflow services up starts them)")
        raise typer.Exit(2)
    for key, value in running.env().items():
        typer.echo(f"export {key}={value}")


@services_app.command("down")
def services_down(
    purge: Annotated[bool, typer.Option(help="also delete their data and credentials")] = False,
) -> None:
    """Stop exactly the processes ``up`` started."""
    from ecgflow.services import down

    stopped = _run(lambda: down(purge=purge))
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


config_app = typer.Typer(help="The pipeline config: its JSON schema.")
app.add_typer(config_app, name="config")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the pipeline config: every section, field, default and rule."""
    import json

    from ecgflow.config import PipelineConfig
    from ecgflow.params import json_schema

    typer.echo(json.dumps(json_schema(PipelineConfig), indent=2))


@app.command(name="validate-config")
def validate_config(
    config: Annotated[Path, typer.Option(help="pipeline config YAML to check")],
) -> None:
    """List every bad field of a config (path / option: rule (got value)); exit 2 on any.

    The environment overrides (ECGFLOW_*) count, as they do for run, compile and submit.
    """
    from ecgflow.config import config_problems

    problems = _run(lambda: config_problems(config))
    for problem in problems:
        console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False)
    if problems:
        console.print(f"{escape(str(config))}: {len(problems)} problem(s)", highlight=False)
        raise typer.Exit(2)
    typer.echo(f"{config}: valid")


@app.command(name="compile")
def compile_(
    out_dir: Annotated[Path, typer.Option(help="folder for the YAML files")] = Path(
        "pipelines/compiled"
    ),
    pipeline: Annotated[
        str | None, typer.Option(help="compile only this pipeline (default: every one)")
    ] = None,
    kubernetes_manifests: Annotated[
        bool,
        typer.Option(help="also write <name>.k8s.yaml: Pipeline/PipelineVersion objects"),
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="pipeline config whose values become the defaults")
    ] = None,
) -> None:
    """Compile the pipelines to KFP v2 IR YAML (<out-dir>/<name>.yaml) for a Kubeflow cluster."""
    from ecgflow.config import load_config
    from ecgflow.pipeline_runner import compile_all

    names = [pipeline] if pipeline else None
    written = _run(lambda: compile_all(out_dir, load_config(config), kubernetes_manifests, names))
    for path in written:
        typer.echo(f"compiled: {path}")


@app.command()
def submit(
    host: Annotated[
        str | None, typer.Option(help="KFP API URL, e.g. http://localhost:8888 (or $KFP_HOST)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="bearer token (or $KFP_TOKEN, safer: options show in ps and history)"),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="KFP multi-user namespace (the profile's)")
    ] = None,
    experiment: Annotated[
        str, typer.Option(help="experiment of the run (created when missing)")
    ] = "ecgflow",
    experiment_must_exist: Annotated[
        bool, typer.Option(help="fail on an unknown experiment instead of creating it")
    ] = False,
    pipeline: Annotated[str, typer.Option(help="pipeline: training | training-gem")] = "training",
    config: Annotated[
        Path | None, typer.Option(help="pipeline config whose values become the defaults")
    ] = None,
    run_name: Annotated[
        str | None, typer.Option(help="run name (default: pipeline name and time)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE pipeline parameter (repeatable)")
    ] = None,
    recurring: Annotated[
        str | None,
        typer.Option(help="schedule a recurring run: 5-field cron, or 6 with seconds first"),
    ] = None,
    interval: Annotated[
        int | None, typer.Option(help="schedule a recurring run every SECONDS")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the run; exit 1 unless it succeeds")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="with --wait: stop waiting after SECONDS (exit 2)")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(help="with --wait: seconds between state checks")
    ] = 10.0,
    dry_run: Annotated[
        bool, typer.Option(help="print the request as JSON (token masked); send nothing")
    ] = False,
    upload_only: Annotated[
        bool, typer.Option(help="upload the pipeline (a new version if it exists), no run")
    ] = False,
    enable_caching: Annotated[
        bool | None,
        typer.Option(
            "--enable-caching/--no-enable-caching",
            help="caching of every step (default: as compiled)",
        ),
    ] = None,
    service_account: Annotated[
        str | None, typer.Option(help="Kubernetes service account of the run's pods")
    ] = None,
) -> None:
    """Submit a pipeline to a Kubeflow Pipelines server: a run, a recurring run or an upload."""
    import json
    import tempfile

    from ecgflow.config import load_config
    from ecgflow.submit import SubmitOptions, SubmitResult, compile_package, plan_submission
    from ecgflow.submit import submit as send

    def submitted(result: SubmitResult) -> None:
        typer.echo(f"run {result.run_id} in experiment {result.experiment_id}: {result.url}")

    def action() -> SubmitResult | None:
        options = SubmitOptions(
            host=host, token=token, namespace=namespace, experiment=experiment,
            experiment_must_exist=experiment_must_exist, run_name=run_name,
            params=param or (), recurring=recurring, interval_s=interval, wait=wait,
            upload_only=upload_only, enable_caching=enable_caching,
            service_account=service_account, dry_run=dry_run,
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="ecgflow-submit-") as tmp:
            compiled = compile_package(pipeline, load_config(config), Path(tmp))
            plan = plan_submission(compiled, options)
            if dry_run:
                typer.echo(json.dumps(plan.describe(), indent=2))
                return None
            return send(
                plan, timeout_s=timeout, poll_s=poll_interval, on_submitted=submitted,
                on_state=lambda state: typer.echo(f"run state: {state}"),
            )  # fmt: skip

    result = _run(action)
    if result is None:
        return
    if result.action == "upload":
        done = "uploaded" if result.created else "already there (same version)"
        typer.echo(f"pipeline {done}: {result.url}")
    elif result.action == "recurring-run":
        typer.echo(f"recurring run {result.recurring_run_id}: {result.url}")
    elif result.final_state is not None:
        if result.failed:
            why = f": {result.error}" if result.error else ""
            console.print(
                f"[bold red]run {result.final_state}[/]{escape(why)} → {result.url}",
                highlight=False,
            )
            raise typer.Exit(1)
        typer.echo(f"run {result.final_state}: {result.url}")


