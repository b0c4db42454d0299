"""GEM speed and quality: training samples/s, generation tokens/s, HTTP vs in-process latency.

Takes a trained GEM (finetune-gem output ``--run DIR``) and the preprocess output it was trained
on (``--data DIR``), and reports on this machine:

  training    samples/s of finetune-gem's epochs (from the run's metrics.json history), and of
              the same loss + backward + optimiser step in a bare loop on the same batches
  generation  tokens/s of greedy generation (one question, ``--tokens`` new tokens)
  latency     p50 / p90 of one closed-set answer (yes / no) and one generated answer (16 tokens)
              in-process vs over HTTP (``ecgflow serve`` V1 predict), same record and question
  quality     with ``--eval DIR`` (an eval-gem output): QA accuracy and balanced accuracy of
              the model beside the label-prior baseline, per template; per source (ECG-QA,
              generated) GEM, the label prior and the evidence-only baseline; the per-lead
              quality model's AUROC (test split per kind, and on the evaluated noise questions)

  recipe      the run's saved params, wall time and per-family val balanced accuracy per epoch

Usage: python benchmarks/gem.py --run RUN --data PRE [--eval EVAL] [--repeats 10] [--quality-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUESTION = "Does lead V1 show any static noise on this ECG?"
DESCRIBE = "Describe the findings of this ECG."


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms"


def training(run: Path, model, signals: torch.Tensor, steps: int) -> None:
    """The run's own samples/s beside a bare loop of the same steps."""
    history = json.loads((run / "metrics.json").read_text())["history"]
    rates = [row["samples_per_s"] for row in history]
    print(f"training   finetune-gem epochs: {np.mean(rates):.2f} samples/s (mean of {len(rates)})")
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-5)
    questions = [QUESTION] * len(signals)
    answers = ["no"] * len(signals)
    started = time.perf_counter()
    for _ in range(steps):
        loss = model(signals, questions, answers)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    rate = steps * len(signals) / (time.perf_counter() - started)
    print(f"training   bare loop, batch {len(signals)} yes/no questions: {rate:.2f} samples/s")
    model.eval()


def generation(model, signal: torch.Tensor, tokens: int) -> None:
    """Greedy tokens per second."""
    started = time.perf_counter()
    ids = model.generate_ids(signal, [DESCRIBE], max_new_tokens=tokens)[0]
    seconds = time.perf_counter() - started
    print(f"generation {len(ids)} tokens in {seconds:.2f} s: {len(ids) / seconds:.1f} tokens/s")


def latency(model_dir: Path, model, header: Path, signal: torch.Tensor, repeats: int) -> None:
    """One answer in-process vs over HTTP."""
    from datasets import wfdb_instance
    from servers import start_ecgflow_serve, stop

    wfdb = wfdb_instance(header)
    cases = {
        "closed-set": (
            lambda: model.choose(signal, [QUESTION], [["yes", "no"]]),
            {"ecg": wfdb, "question": QUESTION, "candidates": ["yes", "no"]},
        ),
        "16 tokens": (
            lambda: model.generate_ids(signal, [DESCRIBE], max_new_tokens=16),
            {"ecg": wfdb, "question": DESCRIBE, "max_new_tokens": 16},
        ),
    }
    with tempfile.TemporaryDirectory() as folder:
        url, process, _ = start_ecgflow_serve(str(model_dir), Path(folder), timeout=300)
        try:
            for name, (local, instance) in cases.items():
                local()  # warm
                inproc = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    local()
                    inproc.append(time.perf_counter() - started)
                body = {"instances": [instance]}
                target = f"{url}/v1/models/ecg-gem:predict"
                httpx.post(target, json=body, timeout=300).raise_for_status()
                remote = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    httpx.post(target, json=body, timeout=300).raise_for_status()
                    remote.append(time.perf_counter() - started)
                print(f"latency    {name:10s} in-process {_percentiles(inproc)}")
                print(f"latency    {name:10s} HTTP       {_percentiles(remote)}")
        finally:
            stop(process)


def recipe(run: Path) -> None:
    """The finetune-gem run's recipe (its saved params) and wall time per epoch."""
    manifest = json.loads((run / "manifest.json").read_text())
    params = manifest["params"]
    train = params["train"]
    history = json.loads((run / "metrics.json").read_text())
    print(
        f"recipe     epochs {train['epochs']} × {params['epoch_samples']} draws, batch "
        f"{train['batch_size']}, LoRA LR {train['lr']:g} (joins after "
        f"{params['projector_share']:.0%} of the steps), towers/projector LR "
        f"{params['tower_lr']:g}, selection {params['selection_metric']}, "
        f"counts {manifest.get('counts')}"
    )
    seconds = [row["seconds"] for row in history["history"]]
    print(
        f"recipe     wall time {sum(seconds) / 60:.1f} min over {len(seconds)} epochs "
        f"(train + val scoring), best epoch {history['best_epoch'] + 1}"
    )
    for row in history["history"]:
        families = {k: v for k, v in row.items() if k.endswith("_balanced_accuracy")}
        print(
            f"recipe     epoch {row['epoch'] + 1}: "
            + ", ".join(
                f"{k.removesuffix('_balanced_accuracy')} {v:.3f}" for k, v in families.items()
            )
        )


def quality(eval_dir: Path) -> None:
    """Model vs label prior from an eval-gem output."""
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    prior = metrics["label_prior"]
    print(f"quality    {metrics['n_questions']} questions")
    print(
        f"quality    accuracy {metrics['qa_accuracy']:.3f} (label prior {prior['qa_accuracy']:.3f})"
        f", balanced {metrics['qa_balanced_accuracy']:.3f} "
        f"(prior {prior['qa_balanced_accuracy']:.3f})"
    )
    for template, value in metrics["qa_accuracy_by_template"].items():
        other = prior["qa_accuracy_by_template"].get(template, float("nan"))
        print(f"quality    template {template}: {value:.3f} (prior {other:.3f})")
    baselines = {
        "GEM": metrics.get("by_source") or {},
        "label prior": prior.get("by_source") or {},
        "evidence baseline": (metrics.get("evidence_baseline") or {}).get("by_source") or {},
    }
    for name, by_source in baselines.items():
        for source, entry in sorted(by_source.items()):
            print(
                f"quality    {name:17s} {source:9s} n {entry['n']:5d}  accuracy "
                f"{_number(entry['accuracy'])}  balanced {_number(entry['balanced_accuracy'])}  "
                f"AUROC {_number(entry.get('auroc'))}"
            )
    prior_attributes = prior.get("qa_accuracy_by_attribute") or {}
    for attribute, value in sorted(metrics.get("qa_accuracy_by_attribute", {}).items()):
        if attribute.startswith("generated: feature"):
            print(
                f"quality    {attribute:40s} accuracy {value:.3f} "
                f"(prior {_number(prior_attributes.get(attribute))})"
            )
    labels = metrics.get("labels") or {}
    if labels.get("n_records"):
        print(
            f"quality    labels ({labels['n_records']} records): GEM yes/no macro F1 "
            f"{_number(labels.get('question_macro_f1'))}, the stated classifier "
            f"{_number(labels.get('classifier_macro_f1'))}, interpretations "
            f"{_number(labels.get('interpretation_macro_f1'))}"
        )
    paired(eval_dir)
    lead_quality = metrics.get("lead_quality") or {}
    for kind, entry in sorted((lead_quality.get("build_instructions_test") or {}).items()):
        print(
            f"evidence   lead quality {kind:20s} test AUROC {_number(entry['auroc'])} "
            f"(leads {entry['n']}, positive {entry['positives']}, records {entry['records']})"
        )
    for key, entry in sorted((lead_quality.get("questions") or {}).items()):
        print(
            f"evidence   lead quality on {key:34s} AUROC {_number(entry['auroc'])} "
            f"(n {entry['n']}, yes {entry['positives']})"
        )


def paired(eval_dir: Path, draws: int = 2000) -> None:
    """GEM − each baseline per source: accuracy and balanced accuracy, record-bootstrap 95 % CI.

    Records are resampled (their questions move together), from eval-gem's predictions.json.
    """
    from ecgflow.evaluation.qa import scores

    rows = json.loads((eval_dir / "predictions.json").read_text())
    rng = np.random.default_rng(0)
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        records = sorted({r["record_id"] for r in mine})
        by_record = {rid: [r for r in mine if r["record_id"] == rid] for rid in records}
        for other in ("prior", "evidence"):
            if any(r[other] is None for r in mine):
                continue

            def difference(sample: list[dict], metric: str, other: str = other) -> float:
                truth = [r["truth"] for r in sample]
                gem = scores(truth, [r["model"] for r in sample])[metric]
                return gem - scores(truth, [r[other] for r in sample])[metric]

            for metric in ("accuracy", "balanced_accuracy"):
                drawn = []
                for _ in range(draws):
                    picked = rng.choice(len(records), len(records))
                    drawn.append(difference(
                        [row for i in picked for row in by_record[records[i]]], metric
                    ))  # fmt: skip
                low, high = np.percentile(drawn, [2.5, 97.5])
                print(
                    f"paired     {source:9s} GEM − {other:8s} {metric:17s} "
                    f"{difference(mine, metric):+.3f} ({low:+.3f} … {high:+.3f}), "
                    f"n {len(mine)} questions / {len(records)} records"
                )


def _number(value: float | None) -> str:
    return "  n/a" if value is None or value != value else f"{value:.3f}"


def main() -> None:
    """Run the parts the arguments allow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="finetune-gem output")
    parser.add_argument("--data", type=Path, required=True, help="its preprocess output")
    parser.add_argument("--eval", type=Path, help="an eval-gem output")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--quality-only", action="store_true", help="recipe and quality only (no speed runs)"
    )
    args = parser.parse_args()
    if args.quality_only:
        recipe(args.run)
        if args.eval:
            quality(args.eval)
        return

    from conftest import SHARED_DATA

    from ecgflow.io.wfdb_reader import read_wfdb
    from ecgflow.models.gem_io import load_gem
    from ecgflow.signal.transform import PreprocessParams, transform_record
    from ecgflow.training.data import ShardRows

    model_dir = args.run / "model"
    model = load_gem(model_dir)
    params = json.loads((model_dir / "preprocess.json").read_text())["params"]
    header = SHARED_DATA / "ptbxl" / "records100" / "00000" / "00001_lr.hea"
    if not header.is_file():
        raise SystemExit(f"needs a real record at {header}")
    x, _ = transform_record(read_wfdb(header), PreprocessParams.model_validate(params))
    signal = torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32))
    rows = ShardRows(args.data, "train")
    batch = torch.stack([torch.from_numpy(rows.signal(i)) for i in range(8)])
    print(f"machine    {torch.get_num_threads()} torch threads; model {model_dir}")
    recipe(args.run)
    training(args.run, model, batch, args.steps)
    generation(model, signal, args.tokens)
    latency(model_dir, model, header, signal, args.repeats)
    if args.eval:
        quality(args.eval)


if __name__ == "__main__":
    main()
