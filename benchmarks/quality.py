"""Model quality on PTB-XL superdiagnostic: ecgflow's default recipe vs a plain supervised ResNet.

Patient-disjoint cross-validation over PTB-XL's ten strat folds (which the split stage checks to
be patient-disjoint): split k tests on ``--test-folds`` consecutive folds, selects (early
stopping, best epoch, F1 thresholds) on the next ``--select-folds`` and trains on the rest.
Every recipe sees the same splits, the same preprocessed arrays and the same seed, one after
the other in this process:

  default     what ``ecgflow run`` (and ``ecgflow <stage>`` with no options) trains: train-clip
              and finetune-classifier with their params models' defaults (the stages
              themselves; from the CLIP encoder only where FinetuneParams says ``pretrained``)
  supervised  the default finetune-classifier recipe from a random init (``pretrained=False``)
  clip-init   the same from the default recipe's CLIP encoder (``pretrained=True``): with
              ``supervised``, the ablation supervised only vs CLIP-initialised
  baseline    a plain supervised 1-D ResNet written here in bare torch: stem + four residual
              blocks, per-lead z-score, BCE, AdamW + cosine, 30 epochs, best epoch on the
              select folds
  clip        train-clip alone (for CLIP experiments with ``--clip`` overrides)

Reported on the test folds only: macro AUROC, macro AUPRC, macro F1 at per-label thresholds
tuned on the select folds; for CLIP also ECG↔text retrieval recall@1/5/10 against chance and
zero-shot macro AUROC from the label prompts. Mean ± sd over splits, wall time per recipe.

Data: ingest → label (ptbxl-superdiagnostic, drop_empty) → split (folds=9: strat folds 1–9,
test = 10) → preprocess (the pipeline's defaults) per CV split, all in-process.
Writes benchmarks/results/quality.json and quality.png.

Usage: python benchmarks/quality.py [--data ../shared/data/ptbxl] [--splits 5]
           [--recipes default,clip-init,baseline] [--threads 1]
           [--clip '{"train": {"epochs": 20}}'] [--finetune '{"train": {"epochs": 30}}']
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from ecgflow.config import PipelineConfig
from ecgflow.evaluation.classification import f1_thresholds, label_report, macro, macro_auroc
from ecgflow.evaluation.retrieval import retrieval_metrics
from ecgflow.models.io import load_model
from ecgflow.stages.finetune_classifier import FinetuneParams, finetune_classifier
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SPLIT, SPLIT_SCHEMA, SplitParams, split
from ecgflow.stages.train_clip import TrainClipParams, train_clip
from ecgflow.text import label_prompts, load_label_def, record_texts
from ecgflow.training.data import ShardRows, SignalLabelDataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
N_FOLDS = 10
RECIPES = ("default", "supervised", "clip-init", "baseline", "clip")
log = logging.getLogger("quality")


# --- data --------------------------------------------------------------------------------------


def prepare(data: Path, work: Path) -> tuple[Path, Path, pd.Series]:
    """Ingest, label and split once; returns records dir, labels dir, strat fold per record."""
    records, labels, split_dir = work / "records", work / "labels", work / "split"
    ingest(IngestParams(source=f"ptbxl:{data}", workers=1), records)
    label(LabelParams(label_set="ptbxl-superdiagnostic", drop_empty=True), records, labels)
    split(SplitParams(folds=9), records, labels, split_dir)
    table = pd.read_parquet(split_dir / SPLIT)
    # folds=9 on PTB-XL keeps strat folds 1–9 as the CV folds; the test split is strat fold 10
    fold = table["fold"].where(table["split"] != "test", N_FOLDS).astype(int)
    return records, labels, pd.Series(fold.to_numpy(), index=table["record_id"].astype(str))


def cv_splits(n_splits: int, test_folds: int, select_folds: int) -> list[dict[str, list[int]]]:
    """Split k: test on folds k*t+1…, select on the next ``select_folds``, train on the rest."""
    out = []
    for k in range(n_splits):
        start = (k * test_folds) % N_FOLDS
        order = [(start + i) % N_FOLDS + 1 for i in range(N_FOLDS)]
        test = order[:test_folds]
        select = order[test_folds : test_folds + select_folds]
        train = sorted(order[test_folds + select_folds :])
        out.append({"train": train, "select": select, "test": test})
    return out


def materialise(folds: pd.Series, assignment: dict[str, list[int]], records: Path, out: Path):
    """Write the CV split as a split stage output and preprocess it (val = the select folds)."""
    name = {f: s for s, fs in (("train", assignment["train"]), ("val", assignment["select"]),
                               ("test", assignment["test"])) for f in fs}  # fmt: skip
    split_dir = out / "split"
    split_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_arrays(
        [
            pa.array(folds.index.tolist(), pa.string()),
            pa.array([name[f] for f in folds], pa.string()),
            pa.array(folds.to_numpy(), pa.int32()),
        ],
        schema=SPLIT_SCHEMA,
    )
    pq.write_table(table, split_dir / SPLIT)
    preprocess(PreprocessParams(workers=1), records, split_dir, out / "data")
    return out / "data"


# --- scoring -----------------------------------------------------------------------------------


def _signals(rows: ShardRows, keep: list[int]) -> torch.Tensor:
    return torch.from_numpy(np.stack([rows.signal(i) for i in keep]))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Sigmoid scores of ``model`` on signals ``x``."""
    model.eval()
    return np.concatenate(
        [torch.sigmoid(model(x[i : i + batch]).float()).numpy() for i in range(0, len(x), batch)]
    )


def classification(
    targets: np.ndarray, scores: np.ndarray, thresholds: dict[str, float], names: list[str]
) -> dict[str, float]:
    """Macro AUROC / AUPRC / F1 (at ``thresholds``) on the test folds."""
    report = label_report(targets, scores, thresholds, names)
    return {
        "macro_auroc": macro(report, "auroc"),
        "macro_auprc": macro(report, "auprc"),
        "macro_f1": macro(report, "f1"),
        **{f"auroc_{n}": report[n]["auroc"] for n in names},
    }


def score_classifier(model_dir: Path, test: SignalLabelDataset, names: list[str]) -> dict:
    """Test metrics of a finetune-classifier output, at its select-fold thresholds."""
    model, _ = load_model(model_dir)
    thresholds = json.loads((model_dir / "thresholds.json").read_text())["thresholds"]
    scores = predict(model, _signals(test.rows, test.keep))
    return classification(test.targets, scores, thresholds, names)


@torch.no_grad()
def score_clip(model_dir: Path, ctx: dict[str, Any]) -> dict[str, float]:
    """Retrieval recall@1/5/10 vs chance and zero-shot macro AUROC on the test folds."""
    model, _ = load_model(model_dir)
    test: SignalLabelDataset = ctx["test"]
    texts = ctx["texts"]
    ids = [test.rows.record_ids[i] for i in test.keep]
    x = _signals(test.rows, test.keep)
    ecg = torch.cat([model.encode_ecg(x[i : i + 256]) for i in range(0, len(x), 256)]).numpy()

    def encode(strings: list[str]) -> np.ndarray:
        tokens = model.text_encoder.tokenize(strings)
        return model.encode_text(tokens["input_ids"], tokens["attention_mask"]).numpy()

    keep = [k for k, r in enumerate(ids) if texts.get(r, "").strip()]
    own = [texts[ids[k]] for k in keep]
    distinct = list(dict.fromkeys(own))
    position = {t: i for i, t in enumerate(distinct)}
    text = np.concatenate([encode(distinct[i : i + 128]) for i in range(0, len(distinct), 128)])
    index = np.array([position[t] for t in own])
    out = retrieval_metrics(ecg[keep], text, index, ks=(1, 5, 10))
    for k in (1, 5, 10):  # chance of ECG→text recall@k against the distinct texts
        out[f"chance_ecg_to_text_top{k}"] = min(k, len(distinct)) / len(distinct)
    out["n_distinct_texts"] = len(distinct)
    prompts = label_prompts(ctx["label_def"])
    names = ctx["names"]
    label_emb = np.stack([encode(prompts[n]).mean(axis=0) for n in names])
    label_emb /= np.linalg.norm(label_emb, axis=1, keepdims=True)
    out["zero_shot_macro_auroc"] = macro_auroc(test.targets, ecg @ label_emb.T, names)
    return out


# --- recipes -----------------------------------------------------------------------------------


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of ``override`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def recipe_params(args: argparse.Namespace, seed: int) -> tuple[TrainClipParams, FinetuneParams]:
    """What ``ecgflow run`` trains (PipelineConfig defaults), with the seed and overrides."""
    config = PipelineConfig()
    common = {"train": {"seed": seed, "device": "cpu", "experiment": "quality"}}
    clip = merge(merge(config.train_clip.model_dump(mode="json"), common), args.clip)
    finetune = merge(merge(config.finetune.model_dump(mode="json"), common), args.finetune)
    return TrainClipParams.model_validate(clip), FinetuneParams.model_validate(finetune)


def run_default(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    clip_params, finetune_params = recipe_params(ctx["args"], ctx["seed"])
    clip = train_clip(clip_params, ctx["data"], ctx["records"], out / "clip")
    ctx["clip_dir"] = out / "clip"
    tuned = finetune_classifier(
        finetune_params, out / "clip", ctx["data"], ctx["labels"], out / "ft"
    )
    result = score_classifier(out / "ft" / "model", ctx["test"], ctx["names"])
    result |= _clip_summary(clip, out / "clip", ctx)
    result |= {"val_macro_auroc": tuned["best"]["macro_auroc"], "best_epoch": tuned["best_epoch"]}
    return result


def run_supervised(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    return _finetune_only(ctx, out, pretrained=False)


def run_clip_init(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    return _finetune_only(ctx, out, pretrained=True)


def _finetune_only(ctx: dict[str, Any], out: Path, pretrained: bool) -> dict[str, Any]:
    """The default finetune recipe from a random init or from a CLIP encoder.

    The CLIP encoder is the default recipe's of this split when it ran before; else its own.
    """
    clip_params, finetune_params = recipe_params(ctx["args"], ctx["seed"])
    finetune_params = finetune_params.model_copy(update={"pretrained": pretrained})
    encoder = None
    if pretrained:
        encoder = ctx.get("clip_dir")
        if encoder is None:
            encoder = out / "clip"
            train_clip(clip_params, ctx["data"], ctx["records"], encoder)
    tuned = finetune_classifier(finetune_params, encoder, ctx["data"], ctx["labels"], out / "ft")
    result = score_classifier(out / "ft" / "model", ctx["test"], ctx["names"])
    result |= {"val_macro_auroc": tuned["best"]["macro_auroc"], "best_epoch": tuned["best_epoch"]}
    return result


def run_clip(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    clip_params, _ = recipe_params(ctx["args"], ctx["seed"])
    clip = train_clip(clip_params, ctx["data"], ctx["records"], out / "clip")
    return _clip_summary(clip, out / "clip", ctx)


def _clip_summary(clip: dict[str, Any], clip_dir: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    test = score_clip(clip_dir / "model", ctx)
    out = {f"clip_{k}": v for k, v in test.items()}
    out["clip_epochs_run"] = len(clip["history"])
    out["clip_best_epoch"] = clip["best_epoch"]
    out["clip_val_curve"] = [row["mean_recall"] for row in clip["history"]]
    out["clip_loss_curve"] = [row["train_loss"] for row in clip["history"]]
    out["clip_val_chance"] = clip["best"].get("chance_mean_recall")
    return out


# --- the plain baseline ------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, k: int = 7) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, k, stride, k // 2, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, k, 1, k // 2, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class PlainResNet(nn.Module):
    """Stem + four residual blocks + global average pooling + linear head."""

    def __init__(self, c_in: int, n_out: int, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(c_in, width, 15, 2, 7, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, 2, 1),
        )
        widths = [width, width, 2 * width, 2 * width]
        blocks, c = [], width
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, 1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=-1))


def _zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True).clamp(min=1e-6)


def run_baseline(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    args, names = ctx["args"], ctx["names"]
    torch.manual_seed(ctx["seed"])
    train, val, test = ctx["train"], ctx["val"], ctx["test"]
    x_train = _zscore(_signals(train.rows, train.keep))
    y_train = torch.from_numpy(train.targets)
    x_val, x_test = _zscore(_signals(val.rows, val.keep)), _zscore(_signals(test.rows, test.keep))
    model = PlainResNet(x_train.shape[1], len(names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    batch, epochs = 64, args.baseline_epochs
    steps = epochs * math.ceil(len(x_train) / batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(ctx["seed"])
    best, best_state, best_epoch, curve = -1.0, None, -1, []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            if len(idx) < 2:
                continue
            loss = nn.functional.binary_cross_entropy_with_logits(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        auroc = macro_auroc(val.targets, predict(model, x_val), names)
        curve.append(auroc)
        if auroc > best:
            best, best_epoch = auroc, epoch
            best_state = copy.deepcopy(model.state_dict())
    assert best_state is not None
    model.load_state_dict(best_state)
    thresholds = f1_thresholds(val.targets, predict(model, x_val), names)
    result = classification(test.targets, predict(model, x_test), thresholds, names)
    return result | {"val_macro_auroc": best, "best_epoch": best_epoch, "val_curve": curve}


RUNNERS = {
    "default": run_default,
    "supervised": run_supervised,
    "clip-init": run_clip_init,
    "baseline": run_baseline,
    "clip": run_clip,
}


# --- report ------------------------------------------------------------------------------------

HEADLINE = ("macro_auroc", "macro_auprc", "macro_f1", "val_macro_auroc")
CLIP_KEYS = (
    "clip_ecg_to_text_top1",
    "clip_ecg_to_text_top5",
    "clip_ecg_to_text_top10",
    "clip_chance_ecg_to_text_top1",
    "clip_chance_ecg_to_text_top5",
    "clip_chance_ecg_to_text_top10",
    "clip_mean_recall",
    "clip_chance_mean_recall",
    "clip_zero_shot_macro_auroc",
    "clip_epochs_run",
)


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sd over splits of every numeric metric."""
    keys = [k for k, v in rows[0].items() if isinstance(v, int | float) and v is not None]
    out = {}
    for key in keys:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        out[key] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
    return out


def print_table(summary: dict[str, Any], walls: dict[str, float]) -> None:
    """The headline table, one row per recipe."""
    print(f"\n{'recipe':<12}" + "".join(f"{k:>20}" for k in HEADLINE) + f"{'wall s':>10}")
    for recipe, stats in summary.items():
        cells = "".join(
            f"{stats[k]['mean']:>12.3f} ± {stats[k]['sd']:.3f}" if k in stats else f"{'—':>20}"
            for k in HEADLINE
        )
        print(f"{recipe:<12}{cells}{walls[recipe]:>10.0f}")
    for recipe, stats in summary.items():
        if "clip_mean_recall" in stats:
            print(f"\nCLIP ({recipe}), test folds:")
            for key in CLIP_KEYS:
                if key in stats:
                    print(f"  {key:<34}{stats[key]['mean']:.3f} ± {stats[key]['sd']:.3f}")


def plot(results: dict[str, Any], path: Path) -> None:
    """Macro AUROC per recipe (mean ± sd, splits as dots) and CLIP's validation curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = results["per_split"]
    classifiers = [r for r in per if "macro_auroc" in per[r][0]]
    clips = [r for r in per if "clip_val_curve" in per[r][0]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, recipe in enumerate(classifiers):
        values = [row["macro_auroc"] for row in per[recipe]]
        ax.bar(i, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
               color=f"C{i}", alpha=0.6, capsize=4)  # fmt: skip
        ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(classifiers)), classifiers)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("test macro AUROC (mean ± sd over splits)")
    ax.set_title("PTB-XL superdiagnostic, patient-disjoint CV")
    ax = axes[1]
    for j, recipe in enumerate(clips):
        for k, row in enumerate(per[recipe]):
            ax.plot(row["clip_val_curve"], color=f"C{j}", alpha=0.7,
                    label=recipe if k == 0 else None)  # fmt: skip
            ax.axhline(row["clip_val_chance"], color=f"C{j}", ls=":", lw=0.8)
    ax.set_xlabel("train-clip epoch")
    ax.set_ylabel("val mean recall (dotted: chance)")
    ax.set_title("CLIP retrieval on the select folds")
    if clips:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--only-splits", default=None, help="comma-separated split indices")
    parser.add_argument("--test-folds", type=int, default=2)
    parser.add_argument("--select-folds", type=int, default=1)
    parser.add_argument("--recipes", default="default,clip-init,baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--clip", type=json.loads, default={}, help="JSON merged into train-clip")
    parser.add_argument("--finetune", type=json.loads, default={}, help="JSON merged into finetune")
    parser.add_argument("--name", default="quality", help="results file stem")
    parser.add_argument("--work", type=Path, default=None, help="keep intermediate outputs here")
    args = parser.parse_args()
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {RECIPES}")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="ecgflow-quality-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        results = run(args, recipes, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{args.name}.png")
    print_table(results["summary"], results["wall_s"])
    print(f"\nwrote {RESULTS / (args.name + '.json')} and .png")


def run(args: argparse.Namespace, recipes: list[str], work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    records, labels, folds = prepare(args.data, work / "prepared")
    label_def = load_label_def(labels)
    names = [entry["name"] for entry in label_def["labels"]]
    table = pd.read_parquet(labels / "labels.parquet")
    texts = record_texts(records)
    splits = cv_splits(args.splits, args.test_folds, args.select_folds)
    chosen = (
        [int(s) for s in args.only_splits.split(",")] if args.only_splits else range(len(splits))
    )
    per_split: dict[str, list[dict[str, Any]]] = {r: [] for r in recipes}
    walls = dict.fromkeys(recipes, 0.0)
    log.info("prepared %d labelled records in %.0f s", len(folds), time.perf_counter() - started)
    for k in chosen:
        assignment = splits[k]
        data = materialise(folds, assignment, records, work / f"split{k}")
        ctx = {
            "args": args, "seed": args.seed + k, "data": data, "records": records,
            "labels": labels, "names": names, "label_def": label_def, "texts": texts,
            **{s: SignalLabelDataset(ShardRows(data, s), table, names)
               for s in ("train", "val", "test")},
        }  # fmt: skip
        for recipe in recipes:
            t0 = time.perf_counter()
            row = RUNNERS[recipe](ctx, work / f"split{k}" / recipe)
            seconds = time.perf_counter() - t0
            walls[recipe] += seconds
            row |= {"split": k, "wall_s": seconds, **{f"n_{s}": len(ctx[s]) for s in
                    ("train", "val", "test")}}  # fmt: skip
            per_split[recipe].append(row)
            brief = {key: round(v, 3) for key, v in row.items() if key in
                     ("macro_auroc", "val_macro_auroc", "clip_mean_recall",
                      "clip_chance_mean_recall", "clip_zero_shot_macro_auroc")}  # fmt: skip
            log.info("split %d %s: %s (%.0f s)", k, recipe, brief, seconds)
            sys.stdout.flush()
    return {
        "data": str(args.data),
        "splits": [splits[k] for k in chosen],
        "seed": args.seed,
        "threads": args.threads,
        "overrides": {"clip": args.clip, "finetune": args.finetune},
        "recipes": recipes,
        "default_params": {
            "train_clip": recipe_params(args, args.seed)[0].model_dump(mode="json"),
            "finetune": recipe_params(args, args.seed)[1].model_dump(mode="json"),
        },
        "wall_s": walls,
        "summary": {r: summarise(per_split[r]) for r in recipes},
        "per_split": per_split,
        "total_s": time.perf_counter() - started,
    }


if __name__ == "__main__":
    main()
