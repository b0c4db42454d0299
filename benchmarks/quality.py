"""Model quality on PTB-XL superdiagnostic: ecgflow's default recipe vs a plain supervised ResNet.

Two figures per recipe, both patient-disjoint (the split stage checks PTB-XL's strat folds are):

  CV          cross-validation over strat folds 1–8 only (``--cv-folds 8``), the figure recipes
              are chosen by: split k tests on ``--test-folds`` consecutive folds, selects (early
              stopping, best epoch, F1 thresholds) on the next ``--select-folds`` and trains on
              the rest. Folds 9–10 are not even preprocessed in these splits.
  untouched   the chosen recipe, reported once on strat folds 9–10, which no choice ever used:
              trained on folds 1–8 except the select fold (``--untouched-select 8``), which picks
              its epoch and thresholds. ``--seeds`` seeds per recipe; with ``baseline`` and
              ``default`` both present, the paired difference default − baseline of the macro
              AUROC (mean over seeds) with a 95 % percentile-bootstrap interval over patients
              (each draw resamples whole patients of the untouched folds and recomputes both
              models' macro AUROC on the same draw; seed spread is reported beside it, not in
              the interval). ``--untouched-only`` runs this part alone (cheap).

Every recipe sees the same splits, the same preprocessed arrays and the same seeds, one after
the other in this process:

  default     what ``ecgflow run`` trains as its classifier: finetune-classifier with its params
              model's defaults (the stage itself), after train-clip only when those defaults say
              ``pretrained`` (its CLIP figures then come along)
  supervised  the default finetune-classifier recipe from a random init (``pretrained=False``)
  clip-init   the same from the default recipe's CLIP encoder (``pretrained=True``): with
              ``supervised``, the ablation supervised only vs CLIP-initialised
  baseline    a plain supervised 1-D ResNet written here in bare torch: stem + four residual
              blocks, per-lead z-score, BCE, AdamW + cosine, 30 epochs, best epoch on the
              select folds
  clip        train-clip alone (for CLIP experiments with ``--clip`` overrides)
  aux         the default recipe with a second head over every SCP statement of the record
              (label set ``ptbxl-all``, PTB-XL's 71) trained beside the superdiagnostic one
              (``--aux-weight``; ``--aux-likelihood``: soft targets from PTB-XL's likelihoods);
              scored on the superdiagnostic head only (:class:`AuxTask`)

Variants of the untouched part (issue 31.2), each paired with a stored run's baseline and
default by ``--reference RUN.json`` (same test records; the variant run trains only the
variant): ``--fold-ensemble 2,5,8`` trains one member per select fold (member j: seed + 100 j,
trained on the other CV folds) and compares the members one by one and their mean (the fold
ensemble); ``--tta`` also scores every finetune model with test-time augmentation (amplitude
scalings, denser sliding windows: :func:`tta_scores`) and compares it with the same models;
``--ensemble RUN.json`` trains nothing and reports a finished run's seed ensembles.

Reported on the test folds only: macro AUROC, macro AUPRC, macro F1 at per-label thresholds
tuned on the select folds; for CLIP also ECG↔text retrieval recall@1/5/10 against chance and
zero-shot macro AUROC from the label prompts. Mean ± sd over splits × seeds, wall time per recipe.

Data: ingest → label (ptbxl-superdiagnostic, drop_empty) → split (folds=9: strat folds 1–9,
test = 10) → preprocess (the pipeline's defaults) per split, all in-process.
Writes benchmarks/results/<name>.json (and <name>.png).

Usage: python benchmarks/quality.py [--data ../shared/data/ptbxl] [--recipes default,baseline]
           [--seeds 3] [--untouched-only | --cv-only] [--splits 4] [--threads 1]
           [--clip '{"train": {"epochs": 20}}'] [--finetune '{"train": {"epochs": 30}}']
           [--reference RUN.json] [--fold-ensemble 2,5,8] [--tta] [--ensemble RUN.json]
           [--recipes aux [--aux-weight 1.0] [--aux-likelihood]]
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
from ecgflow.manifest import write_manifest
from ecgflow.models import Classifier
from ecgflow.models.io import load_model
from ecgflow.stages.finetune_classifier import ClassifierTask, FinetuneParams, finetune_classifier
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label
from ecgflow.stages.preprocess import PreprocessParams, preprocess
from ecgflow.stages.split import SPLIT, SPLIT_SCHEMA, SplitParams, split
from ecgflow.stages.train_clip import TrainClipParams, train_clip
from ecgflow.text import label_prompts, load_label_def, record_texts
from ecgflow.training.data import ShardRows, SignalLabelDataset
from ecgflow.training.distributed import init_distributed, shutdown
from ecgflow.training.loop import fit, seed_everything

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
N_FOLDS = 10
RECIPES = ("default", "supervised", "clip-init", "baseline", "clip", "aux")
log = logging.getLogger("quality")


# --- data --------------------------------------------------------------------------------------


def prepare(data: Path, work: Path) -> tuple[Path, Path, pd.Series, dict[str, str]]:
    """Ingest, label and split once: records dir, labels dir, strat fold and patient per record."""
    records, labels, split_dir = work / "records", work / "labels", work / "split"
    ingest(IngestParams(source=f"ptbxl:{data}", workers=1), records)
    label(LabelParams(label_set="ptbxl-superdiagnostic", drop_empty=True), records, labels)
    split(SplitParams(folds=9), records, labels, split_dir)
    table = pd.read_parquet(split_dir / SPLIT)
    # folds=9 on PTB-XL keeps strat folds 1–9 as the CV folds; the test split is strat fold 10
    fold = table["fold"].where(table["split"] != "test", N_FOLDS).astype(int)
    meta = pd.read_parquet(records / "records.parquet", columns=["record_id", "patient_id"])
    # a record without a patient id is its own patient
    patients = {
        str(r): str(p) if p is not None and p == p else f"record:{r}"
        for r, p in zip(meta["record_id"], meta["patient_id"], strict=True)
    }
    return (
        records,
        labels,
        pd.Series(fold.to_numpy(), index=table["record_id"].astype(str)),
        patients,
    )


def cv_splits(
    folds: list[int], n_splits: int, test_folds: int, select_folds: int
) -> list[dict[str, list[int]]]:
    """Split k over ``folds``: test on folds k*t…, select on the next ``select_folds``, train on
    the rest."""
    out, n = [], len(folds)
    for k in range(n_splits):
        start = (k * test_folds) % n
        order = [folds[(start + i) % n] for i in range(n)]
        test = order[:test_folds]
        select = order[test_folds : test_folds + select_folds]
        train = sorted(order[test_folds + select_folds :])
        out.append({"train": train, "select": select, "test": test})
    return out


def untouched_split(cv_folds: list[int], select: list[int]) -> dict[str, list[int]]:
    """Train on the CV folds but ``select``, select on ``select``, test on every other fold."""
    test = [f for f in range(1, N_FOLDS + 1) if f not in cv_folds]
    return {"train": [f for f in cv_folds if f not in select], "select": select, "test": test}


def materialise(folds: pd.Series, assignment: dict[str, list[int]], records: Path, out: Path):
    """Write a split as a split stage output and preprocess it (val = the select folds).

    Records of folds outside ``assignment`` are left out of the split, so preprocess never
    reads them (CV on folds 1–8 does not touch 9–10, not even for normalisation statistics).
    """
    name = {f: s for s, fs in (("train", assignment["train"]), ("val", assignment["select"]),
                               ("test", assignment["test"])) for f in fs}  # fmt: skip
    folds = folds[folds.isin(list(name))]
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
    # a complete split output, so preprocess accepts it as its input
    write_manifest(split_dir, stage="split", method="benchmarks/quality.py", folds=assignment)
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


#: amplitude factors of the ``scale`` test-time augmentation (training draws 0.8–1.2 per lead)
TTA_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2)


def tta_scores(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Test-time augmentation beyond the sliding windows (which score every half window).

    ``scale``: the mean probability over the inputs scaled by :data:`TTA_SCALES`; ``dense``:
    windows every eighth of a window (more time shifts); ``dense+scale``: both.
    """
    base = model.config

    def scaled() -> np.ndarray:
        return np.mean([predict(model, x * f) for f in TTA_SCALES], axis=0)

    out = {"scale": scaled()}
    if base.window is not None and x.shape[-1] > base.window:
        model.config = base.model_copy(update={"window_stride": max(base.window // 8, 1)})
        out["dense"] = predict(model, x)
        out["dense+scale"] = scaled()
        model.config = base
    return out


def score_classifier(
    model_dir: Path, test: SignalLabelDataset, names: list[str], tta: bool = False
) -> dict:
    """Test metrics of a finetune-classifier output, at its select-fold thresholds; with
    ``tta`` also the test-time-augmented scores (``_tta``, see :func:`tta_scores`)."""
    model, _ = load_model(model_dir)
    thresholds = json.loads((model_dir / "thresholds.json").read_text())["thresholds"]
    x = _signals(test.rows, test.keep)
    scores = predict(model, x)
    out = classification(test.targets, scores, thresholds, names) | {"_scores": scores}
    if tta:
        out["_tta"] = tta_scores(model, x)
        for variant, matrix in out["_tta"].items():
            out[f"tta_{variant}_macro_auroc"] = macro_auroc(test.targets, matrix, names)
    return out


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
    """The default classifier; train-clip first only when the default finetune needs it."""
    clip_params, finetune_params = recipe_params(ctx["args"], ctx["seed"])
    clip, encoder = None, None
    if finetune_params.pretrained:
        encoder = out / "clip"
        clip = train_clip(clip_params, ctx["data"], ctx["records"], encoder)
        ctx["clip_dir"] = encoder
    tuned = finetune_classifier(finetune_params, encoder, ctx["data"], ctx["labels"], out / "ft")
    result = score_classifier(out / "ft" / "model", ctx["test"], ctx["names"], ctx["args"].tta)
    if clip is not None:
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
    result = score_classifier(out / "ft" / "model", ctx["test"], ctx["names"], ctx["args"].tta)
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
    scores = predict(model, x_test)
    result = classification(test.targets, scores, thresholds, names)
    return result | {"val_macro_auroc": best, "best_epoch": best_epoch, "val_curve": curve,
                     "_scores": scores}  # fmt: skip


# --- auxiliary targets: every SCP statement as a second head ---------------------------------


class _WithAux(torch.utils.data.Dataset):
    """A SignalLabelDataset whose targets carry the aux columns after the main ones."""

    def __init__(self, main: SignalLabelDataset, aux: np.ndarray) -> None:
        self.main, self.aux = main, torch.from_numpy(aux)
        self.targets = main.targets

    def __len__(self) -> int:
        return len(self.main)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.main[i]
        return x, torch.cat([y, self.aux[i]])


class _MainHead(nn.Module):
    """The main labels' logits of a model whose head also has the aux outputs."""

    def __init__(self, model: nn.Module, n: int) -> None:
        super().__init__()
        self.model, self.n = model, n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, : self.n]


class AuxTask(ClassifierTask):
    """finetune-classifier's task with a second head: every SCP statement of the record.

    The head gets one more output per statement of ``aux_dir`` (the ``ptbxl-all`` label set:
    PTB-XL's 71 statements, present/absent whatever the likelihood, as the PTB-XL benchmark
    counts them); a linear head over the same features, so one linear layer with both blocks of
    outputs is the same model. Loss: the main BCE (with pos_weight) + ``weight`` × the mean BCE
    over the statements (no pos_weight). With ``likelihoods`` (record id → statement →
    PTB-XL's likelihood in %) a present statement's target is its likelihood / 100 (soft
    targets; 0, which PTB-XL gives non-diagnostic statements, counts as certain).
    Validation, selection, thresholds and the saved model use the main labels only: the saved
    classifier is an ordinary one (the aux rows of the head are dropped), scored like the
    default.
    """

    def __init__(
        self, params: FinetuneParams, data_dir: Path, labels_dir: Path, aux_dir: Path,
        weight: float, likelihoods: dict[str, dict[str, float]] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(params, None, data_dir, labels_dir)
        aux_def = json.loads((aux_dir / "label_def.json").read_text())
        self.aux_names = [e["name"] for e in aux_def["labels"]]
        table = pd.read_parquet(aux_dir / "labels.parquet")
        table = table.set_index(table["record_id"].astype(str))
        rows = self.train_dataset
        ids = [rows.rows.record_ids[i] for i in rows.keep]
        aux = table.loc[ids, self.aux_names].to_numpy(dtype=np.float32)
        if likelihoods is not None:
            soft = np.array(
                [[likelihoods[r].get(code, 0.0) for code in self.aux_names] for r in ids],
                dtype=np.float32,
            )
            aux = np.where(aux > 0, np.where(soft > 0, soft / 100.0, 1.0), 0.0).astype(np.float32)
        self.train_dataset = _WithAux(rows, aux)
        self.n_main, self.weight = len(self.names), weight
        labels = self.names + [f"aux:{a}" for a in self.aux_names]
        self.model = Classifier(self.config.model_copy(update={"labels": labels}))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...], device: torch.device):
        x, y = (t.to(device) for t in batch)
        logits, n = model(x).float(), self.n_main
        main = nn.functional.binary_cross_entropy_with_logits(
            logits[:, :n], y[:, :n], pos_weight=self.pos_weight.to(device)
        )
        aux = nn.functional.binary_cross_entropy_with_logits(logits[:, n:], y[:, n:])
        return main + self.weight * aux

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return super().evaluate(_MainHead(model, self.n_main), device)

    def save_best(self, model: nn.Module, folder: Path) -> None:
        model = getattr(model, "module", model)
        main = Classifier(self.config)
        main.encoder.load_state_dict(model.encoder.state_dict())
        with torch.no_grad():
            main.head[1].weight.copy_(model.head[1].weight[: self.n_main])
            main.head[1].bias.copy_(model.head[1].bias[: self.n_main])
        super().save_best(main, folder)


def run_aux(ctx: dict[str, Any], out: Path) -> dict[str, Any]:
    """The default recipe with every SCP statement as auxiliary targets (:class:`AuxTask`)."""
    _, params = recipe_params(ctx["args"], ctx["seed"])
    (out / "ft").mkdir(parents=True, exist_ok=True)
    env = init_distributed(params.train.device)
    try:
        seed_everything(params.train.seed)
        likelihoods = None
        if ctx["args"].aux_likelihood:
            table = pd.read_parquet(ctx["records"] / "records.parquet",
                                    columns=["record_id", "scp_codes"])  # fmt: skip
            likelihoods = {str(r): {k: float(v or 0.0) for k, v in json.loads(c).items()}
                           for r, c in zip(table["record_id"], table["scp_codes"], strict=True)
                           if isinstance(c, str)}  # fmt: skip
        task = AuxTask(params, ctx["data"], ctx["labels"], ctx["aux_labels"],
                       ctx["args"].aux_weight, likelihoods)  # fmt: skip
        fitted = fit(task, params.train, out / "ft", env, False)
    finally:
        shutdown(env)
    result = score_classifier(out / "ft" / "model", ctx["test"], ctx["names"], ctx["args"].tta)
    return result | {
        "val_macro_auroc": fitted.best["macro_auroc"],
        "best_epoch": fitted.best_epoch,
        "n_aux_labels": len(task.aux_names),
    }


RUNNERS = {
    "default": run_default,
    "supervised": run_supervised,
    "clip-init": run_clip_init,
    "baseline": run_baseline,
    "clip": run_clip,
    "aux": run_aux,
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


# --- paired bootstrap over patients ------------------------------------------------------------


def _label_aurocs(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC per label column by ranks (ties averaged); NaN where a column lacks a class."""
    from scipy.stats import rankdata

    pos = targets.sum(axis=0)
    neg = len(targets) - pos
    ranks = rankdata(scores, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * targets).sum(axis=0) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _macro(targets: np.ndarray, runs: list[np.ndarray]) -> float:
    """Macro AUROC averaged over the seeds' score matrices ``runs`` (same labels for each)."""
    return float(np.mean([np.nanmean(_label_aurocs(targets, s)) for s in runs]))


def paired_bootstrap(
    targets: np.ndarray,
    a: list[np.ndarray],
    b: list[np.ndarray],
    patients: list[str],
    n: int = 2000,
    seed: int = 0,
    margin: float = 0.02,
) -> dict[str, Any]:
    """Macro AUROC of ``a`` − ``b`` (each the mean over its seeds) with 95 % intervals.

    Each draw resamples whole patients with replacement and recomputes both on the same draw;
    a draw where a label has one class only leaves that label out for both. A second interval
    (``diff_ci95_seeds_and_patients``) also resamples each model's seeds with replacement in
    every draw, so it covers the seed as well.
    """
    codes = np.unique(np.asarray(patients, dtype=str), return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    rng, seeds_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    draws_a, draws_b, mixed = [], [], []
    for _ in range(n):
        pick = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        y = targets[pick]
        draws_a.append(_macro(y, [s[pick] for s in a]))
        draws_b.append(_macro(y, [s[pick] for s in b]))
        sa, sb = (seeds_rng.integers(0, len(m), len(m)) for m in (a, b))
        mixed.append(_macro(y, [a[i][pick] for i in sa]) - _macro(y, [b[i][pick] for i in sb]))
    da, db = np.array(draws_a), np.array(draws_b)
    diff = da - db

    def ci(v: np.ndarray) -> list[float]:
        return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]

    point = _macro(targets, a) - _macro(targets, b)
    return {
        "a_macro_auroc": _macro(targets, a),
        "b_macro_auroc": _macro(targets, b),
        "diff": point,
        "diff_ci95": ci(diff),
        "diff_ci95_seeds_and_patients": ci(np.array(mixed)),
        "a_ci95": ci(da),
        "b_ci95": ci(db),
        "per_seed_diff": [
            float(np.nanmean(_label_aurocs(targets, x)) - np.nanmean(_label_aurocs(targets, z)))
            for x, z in zip(a, b, strict=False)
        ],
        "share_of_draws_diff_le_0": float(np.mean(diff <= 0)),
        "margin": margin,
        "clears_margin": bool(point >= margin and ci(diff)[0] > 0),
        "n_bootstrap": n,
        "unit": "patient",
        "n_patients": len(members),
        "n_records": len(targets),
        "_draws": diff,
    }


# --- ensembles and comparisons against a stored run -----------------------------------------


def score_sets(held: dict[str, Any], prefix: str = "") -> dict[str, list[np.ndarray]]:
    """The test-score matrices of a run's untouched part, one list (runs) per name.

    ``<recipe>`` holds each run's scores; ``<recipe>+tta:<variant>`` the same models'
    test-time-augmented scores where the run stored them.
    """
    out: dict[str, list[np.ndarray]] = {}
    for recipe, rows in held.get("per_run", {}).items():
        rows = [r for r in rows if "test_scores" in r]
        if not rows:
            continue
        out[prefix + recipe] = [np.asarray(r["test_scores"]) for r in rows]
        for variant in rows[0].get("tta_scores", {}):
            key = f"{prefix}{recipe}+tta:{variant}"
            out[key] = [np.asarray(r["tta_scores"][variant]) for r in rows]
    return out


def ensemble(runs: list[np.ndarray]) -> list[np.ndarray]:
    """One score matrix: the mean of the runs' probabilities (seed or fold ensemble)."""
    return [np.mean(np.stack(runs), axis=0)]


def compare(
    sets: dict[str, list[np.ndarray]],
    pairs: list[tuple[str, str]],
    targets: np.ndarray,
    patients: list[str],
    n: int,
    seed: int,
    own: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Paired patient bootstraps of each pair ``(a, b)`` in three modes.

    ``single`` compares the models one by one (macro AUROC averaged over runs, as ``paired``);
    ``ensemble`` the mean of each side's probabilities over its runs; ``ensemble_vs_single``
    ``a``'s ensemble with ``b``'s single models, and also each name of ``own`` (default: every
    ``a``) with more than one run against its own single models (the gain of ensembling).
    """
    single = lambda runs: runs  # noqa: E731
    modes = {"single": (single, single), "ensemble": (ensemble, ensemble),
             "ensemble_vs_single": (ensemble, single)}  # fmt: skip
    own = list(dict.fromkeys(a for a, _ in pairs)) if own is None else own
    gains = [(a, a) for a in own if len(sets[a]) > 1]
    out: dict[str, dict[str, Any]] = {mode: {} for mode in modes}
    for mode, (pick_a, pick_b) in modes.items():
        for a, b in pairs + (gains if mode == "ensemble_vs_single" else []):
            runs_a, runs_b = pick_a(sets[a]), pick_b(sets[b])
            result = paired_bootstrap(targets, runs_a, runs_b, patients, n, seed)
            result.pop("_draws")
            key = f"{a} ensemble − {b}" if mode == "ensemble_vs_single" else f"{a} − {b}"
            out[mode][key] = {
                "a": a, "b": b, "n_runs_a": len(sets[a]), "n_runs_b": len(sets[b]), **result
            }  # fmt: skip
    return out


def comparison_pairs(own: dict[str, list[np.ndarray]], reference: bool) -> list[tuple[str, str]]:
    """Every variant against the baseline and the default (the reference run's, where given),
    and each test-time augmentation against the same models without it."""
    pairs = []
    for name in own:
        recipe = name.split("+tta:")[0]
        if "+tta:" in name:
            pairs.append((name, recipe))
        for other in ("baseline", "default"):
            if reference:
                pairs.append((name, f"ref:{other}"))
            elif other in own and recipe not in (other, "baseline"):
                pairs.append((name, other))
    return pairs


def print_comparisons(comparisons: dict[str, dict[str, Any]]) -> None:
    """One line per compared pair and mode."""
    for mode, rows in comparisons.items():
        print(f"\n{mode}: macro AUROC a − b, 95 % patient bootstrap (seeds too)")
        for key, r in rows.items():
            lo, hi = r["diff_ci95"]
            lo2, hi2 = r["diff_ci95_seeds_and_patients"]
            print(
                f"  {key:<44} {r['a_macro_auroc']:.3f} vs {r['b_macro_auroc']:.3f}: "
                f"{r['diff']:+.3f} ({lo:+.3f} … {hi:+.3f}; {lo2:+.3f} … {hi2:+.3f}) "
                f"[{r['n_runs_a']} vs {r['n_runs_b']} runs]"
            )


def ensemble_report(args: argparse.Namespace) -> None:
    """``--ensemble RUN.json``: ensembles of a finished run's untouched part, no training.

    With the run's ``--reference`` its pairs (:func:`comparison_pairs`), else default vs
    baseline; all three modes of :func:`compare`. Patients come from the run's JSON when it
    stored them, else from ingesting ``--data``.
    """
    source = json.loads(Path(args.ensemble).read_text())
    held = source["untouched"]
    patients = held.get("patients")
    if patients is None:
        with tempfile.TemporaryDirectory(prefix="ecgflow-quality-") as tmp:
            *_, by_record = prepare(args.data, Path(tmp))
        patients = [by_record[r] for r in held["record_ids"]]
    own = score_sets(held)
    sets = dict(own)
    if held.get("reference"):
        ref_path = Path(held["reference"])
        ref_path = ref_path if ref_path.is_absolute() else ROOT / ref_path
        reference = json.loads(ref_path.read_text())["untouched"]
        if reference["record_ids"] != held["record_ids"]:
            raise RuntimeError(f"{held['reference']}: other test records than {args.ensemble}")
        sets |= score_sets(reference, prefix="ref:")
        pairs = comparison_pairs(own, reference=True)
    else:
        pairs = [(a, b) for a, b in (("default", "baseline"),) if a in sets and b in sets]
    comparisons = compare(sets, pairs, np.asarray(held["targets"]), patients,
                          args.bootstrap, args.seed, own=list(own))  # fmt: skip
    out = {
        "source": str(args.ensemble), "reference": held.get("reference"),
        "seeds": held["seeds"], "test_folds": held["test_folds"],
        "n_test_records": len(held["record_ids"]), "n_test_patients": len(set(patients)),
        "comparisons": comparisons,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }  # fmt: skip
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print_comparisons(comparisons)
    print(f"\nwrote {path}")


# --- report ------------------------------------------------------------------------------------


def print_table(results: dict[str, Any]) -> None:
    """The headline tables: CV and untouched, one row per recipe; the paired difference."""
    for part in ("cv", "untouched"):
        if part not in results:
            continue
        res = results[part]
        where = f"folds {res['test_folds']}" if part == "untouched" else f"CV on {res['folds']}"
        print(f"\n{part} ({where}), mean ± sd over {res['n_runs_per_recipe']} runs")
        print(f"{'recipe':<12}" + "".join(f"{k:>20}" for k in HEADLINE) + f"{'wall s':>10}")
        for recipe, stats in res["summary"].items():
            cells = "".join(
                f"{stats[k]['mean']:>12.3f} ± {stats[k]['sd']:.3f}" if k in stats else f"{'—':>20}"
                for k in HEADLINE
            )
            print(f"{recipe:<12}{cells}{res['wall_s'][recipe]:>10.0f}")
        for recipe, stats in res["summary"].items():
            if "clip_mean_recall" in stats:
                print(f"\nCLIP ({recipe}), test folds:")
                for key in CLIP_KEYS:
                    if key in stats:
                        print(f"  {key:<34}{stats[key]['mean']:.3f} ± {stats[key]['sd']:.3f}")
        paired = res.get("paired")
        if paired:
            lo, hi = paired["diff_ci95"]
            print(
                f"\n{paired['a']} − {paired['b']}: {paired['diff']:+.3f} macro AUROC "
                f"(95 % CI {lo:+.3f} … {hi:+.3f}, {paired['n_bootstrap']} draws over "
                f"{paired['n_patients']} patients / {paired['n_records']} records); per seed "
                + ", ".join(f"{d:+.3f}" for d in paired["per_seed_diff"])
                + f"; clears +{paired['margin']} with CI > 0: {paired['clears_margin']}"
            )


def plot(results: dict[str, Any], draws: np.ndarray | None, path: Path) -> None:
    """Macro AUROC per recipe (CV: bars ± sd with runs as dots; untouched: diamonds), the
    bootstrap distribution of the paired difference, and CLIP's validation curves if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = {part: results[part]["per_run"] for part in ("cv", "untouched") if part in results}
    recipes = [r for r in results["recipes"] if any("macro_auroc" in (p[r] or [{}])[0]
               for p in per.values())]  # fmt: skip
    clips = [
        (part, r) for part, p in per.items() for r in p if p[r] and "clip_val_curve" in p[r][0]
    ]
    panels = 1 + (draws is not None) + bool(clips)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    axes = list(axes[0])
    ax = axes.pop(0)
    for i, recipe in enumerate(recipes):
        cv = [row["macro_auroc"] for row in per.get("cv", {}).get(recipe, [])]
        if cv:
            sd = np.std(cv, ddof=1) if len(cv) > 1 else 0
            label = "CV" if i == 0 else None
            ax.bar(i, np.mean(cv), yerr=sd, color=f"C{i}", alpha=0.5, capsize=4, label=label)
            ax.scatter([i - 0.1] * len(cv), cv, color="k", s=10, zorder=3)
        held = [row["macro_auroc"] for row in per.get("untouched", {}).get(recipe, [])]
        if held:
            ax.scatter([i + 0.1] * len(held), held, color="C3", marker="D", s=25, zorder=4,
                       label="untouched (9–10)" if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(recipes)), recipes)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("test macro AUROC")
    ax.set_title("PTB-XL superdiagnostic, patient-disjoint")
    ax.legend(loc="lower right")
    if draws is not None:
        ax = axes.pop(0)
        paired = results["untouched"]["paired"]
        ax.hist(draws, bins=50, color="C0", alpha=0.7)
        for x, style in (
            (0, "-"),
            (paired["margin"], "--"),
            *((v, ":") for v in paired["diff_ci95"]),
        ):
            ax.axvline(x, color="k", ls=style, lw=1)
        ax.set_xlabel(f"{paired['a']} − {paired['b']} macro AUROC (patient bootstrap)")
        ax.set_title(f"untouched folds: {paired['diff']:+.3f} "
                     f"[{paired['diff_ci95'][0]:+.3f}, {paired['diff_ci95'][1]:+.3f}]")  # fmt: skip
    if clips:
        ax = axes.pop(0)
        for j, (part, recipe) in enumerate(clips):
            for k, row in enumerate(per[part][recipe]):
                ax.plot(row["clip_val_curve"], color=f"C{j}", alpha=0.7,
                        label=f"{recipe} ({part})" if k == 0 else None)  # fmt: skip
                ax.axhline(row["clip_val_chance"], color=f"C{j}", ls=":", lw=0.8)
        ax.set_xlabel("train-clip epoch")
        ax.set_ylabel("val mean recall (dotted: chance)")
        ax.set_title("CLIP retrieval on the select folds")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--cv-folds", type=int, default=8, help="CV over strat folds 1…N")
    parser.add_argument("--splits", type=int, default=4, help="CV splits")
    parser.add_argument("--only-splits", default=None, help="comma-separated CV split indices")
    parser.add_argument("--test-folds", type=int, default=2)
    parser.add_argument("--select-folds", type=int, default=1)
    parser.add_argument(
        "--untouched-select", default="8", help="select fold(s) of the untouched run"
    )
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--untouched-only", action="store_true", help="skip the CV")
    part.add_argument("--cv-only", action="store_true", help="skip the untouched folds")
    parser.add_argument("--recipes", default="default,baseline")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per recipe on the untouched folds"
    )
    parser.add_argument("--cv-seeds", type=int, default=1, help="seeds per recipe and CV split")
    parser.add_argument("--bootstrap", type=int, default=2000, help="patient bootstrap draws")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--clip", type=json.loads, default={}, help="JSON merged into train-clip")
    parser.add_argument("--finetune", type=json.loads, default={}, help="JSON merged into finetune")
    parser.add_argument("--name", default="quality", help="results file stem")
    parser.add_argument("--work", type=Path, default=None, help="keep intermediate outputs here")
    parser.add_argument(
        "--ensemble", default=None, metavar="RUN.json",
        help="no training: seed ensembles of a finished run's untouched part (writes --name)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", type=Path, default=None, metavar="RUN.json",
        help="compare this run's untouched models with that run's baseline and default "
        "(same test records; single models and ensembles)",
    )  # fmt: skip
    parser.add_argument(
        "--fold-ensemble", default=None, metavar="FOLDS",
        help="untouched part once per select fold (comma-separated; member j: seed + 100 j, "
        "trained on the other CV folds); the members' mean is the fold ensemble",
    )  # fmt: skip
    parser.add_argument(
        "--tta", action="store_true", help="also score finetune recipes with test-time augmentation"
    )
    parser.add_argument(
        "--aux-weight", type=float, default=1.0, help="aux recipe: weight of the SCP-statement loss"
    )
    parser.add_argument(
        "--aux-likelihood", action="store_true",
        help="aux recipe: soft statement targets, PTB-XL's likelihood / 100",
    )  # fmt: skip
    args = parser.parse_args()
    if args.ensemble:
        ensemble_report(args)
        return
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {RECIPES}")
    select = [int(f) for f in args.untouched_select.split(",")]
    if not 1 <= args.cv_folds < N_FOLDS or not set(select) <= set(range(1, args.cv_folds + 1)):
        parser.error("--cv-folds must leave folds untouched and hold --untouched-select")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"

    def save(results: dict[str, Any]) -> None:
        """Written after every trained model, so an interrupted run keeps what it finished."""
        path.write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="ecgflow-quality-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        results, draws = run(args, recipes, select, work, save)
    save(results)
    plot(results, draws, RESULTS / f"{args.name}.png")
    print_table(results)
    if "comparisons" in results.get("untouched", {}):
        print_comparisons(results["untouched"]["comparisons"])
    print(f"\nwrote {path} and .png")


def run_split(
    args: argparse.Namespace,
    shared: dict[str, Any],
    assignment: dict[str, list[int]],
    work: Path,
    seeds: list[int],
    recipes: list[str],
    done: Any,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float], list[np.ndarray]]:
    """Train and test every recipe with every seed on one split; per-run rows and test scores."""
    data = materialise(shared["folds"], assignment, shared["records"], work)
    table, names = shared["table"], shared["names"]
    ctx = {
        "args": args, "data": data, "records": shared["records"], "labels": shared["labels"],
        "names": names, "label_def": shared["label_def"], "texts": shared["texts"],
        "aux_labels": shared.get("aux_labels"),
        **{s: SignalLabelDataset(ShardRows(data, s), table, names)
           for s in ("train", "val", "test")},
    }  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {r: [] for r in recipes}
    walls = dict.fromkeys(recipes, 0.0)
    for seed in seeds:
        ctx["seed"] = seed
        ctx.pop("clip_dir", None)
        for recipe in recipes:
            t0 = time.perf_counter()
            row = RUNNERS[recipe](ctx, work / f"seed{seed}" / recipe)
            seconds = time.perf_counter() - t0
            walls[recipe] += seconds
            scores = row.pop("_scores", None)
            tta = row.pop("_tta", {})
            row |= {"seed": seed, "wall_s": seconds,
                    **{f"n_{s}": len(ctx[s]) for s in ("train", "val", "test")}}  # fmt: skip
            if scores is not None:
                row["test_scores"] = np.round(scores, 6).tolist()
            if tta:
                row["tta_scores"] = {k: np.round(v, 6).tolist() for k, v in tta.items()}
            rows[recipe].append(row)
            brief = {key: round(v, 3) for key, v in row.items() if key in
                     ("macro_auroc", "val_macro_auroc", "clip_mean_recall",
                      "clip_chance_mean_recall", "clip_zero_shot_macro_auroc")}  # fmt: skip
            log.info("%s seed %d %s: %s (%.0f s)", work.name, seed, recipe, brief, seconds)
            sys.stdout.flush()
            done(rows, walls)
    test = ctx["test"]
    ids = [test.rows.record_ids[i] for i in test.keep]
    return rows, walls, [ids, test.targets]


def run(
    args: argparse.Namespace, recipes: list[str], select: list[int], work: Path, save: Any
) -> tuple[dict[str, Any], np.ndarray | None]:
    started = time.perf_counter()
    records, labels, folds, patients = prepare(args.data, work / "prepared")
    label_def = load_label_def(labels)
    names = [entry["name"] for entry in label_def["labels"]]
    shared = {
        "records": records, "labels": labels, "folds": folds, "names": names,
        "label_def": label_def, "table": pd.read_parquet(labels / "labels.parquet"),
        "texts": record_texts(records),
    }  # fmt: skip
    if "aux" in recipes:
        shared["aux_labels"] = work / "prepared" / "labels-all"
        label(LabelParams(label_set="ptbxl-all"), records, shared["aux_labels"])
    log.info("prepared %d labelled records in %.0f s", len(folds), time.perf_counter() - started)
    cv_folds = list(range(1, args.cv_folds + 1))
    results: dict[str, Any] = {
        "data": str(args.data),
        "labels": names,
        "recipes": recipes,
        "seed": args.seed,
        "threads": args.threads,
        "overrides": {"clip": args.clip, "finetune": args.finetune},
        "default_params": {
            "train_clip": recipe_params(args, args.seed)[0].model_dump(mode="json"),
            "finetune": recipe_params(args, args.seed)[1].model_dump(mode="json"),
        },
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "partial": True,
    }

    def finish(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return {r: summarise(v) for r, v in rows.items() if v}

    draws = None
    if not args.untouched_only:
        splits = cv_splits(cv_folds, args.splits, args.test_folds, args.select_folds)
        chosen = (
            [int(s) for s in args.only_splits.split(",")]
            if args.only_splits
            else range(len(splits))
        )
        cv: dict[str, Any] = {
            "folds": cv_folds, "splits": [splits[k] for k in chosen],
            "seeds_per_split": args.cv_seeds,
            "per_run": {r: [] for r in recipes}, "wall_s": dict.fromkeys(recipes, 0.0),
        }  # fmt: skip
        results["cv"] = cv
        for k in chosen:
            seeds = [args.seed + k + 100 * j for j in range(args.cv_seeds)]
            before = {r: list(v) for r, v in cv["per_run"].items()}
            walls0 = dict(cv["wall_s"])

            def done(rows, walls, k=k, before=before, walls0=walls0):
                for r in recipes:
                    cv["per_run"][r] = before[r] + [x | {"split": k} for x in rows[r]]
                    cv["wall_s"][r] = walls0[r] + walls[r]
                cv["summary"] = finish(cv["per_run"])
                cv["n_runs_per_recipe"] = max(len(v) for v in cv["per_run"].values())
                save(results)

            run_split(args, shared, splits[k], work / f"cv{k}", seeds, recipes, done)
    if not args.cv_only:
        # (select folds, seeds) per untouched split: one split with --seeds seeds, or one
        # member per --fold-ensemble select fold with one seed each
        members = (
            [([s], [args.seed + 100 * j]) for j, s in enumerate(
                int(f) for f in args.fold_ensemble.split(","))]
            if args.fold_ensemble
            else [(select, [args.seed + 100 * j for j in range(args.seeds)])]
        )  # fmt: skip
        assignment = untouched_split(cv_folds, members[0][0])
        held: dict[str, Any] = {
            "test_folds": assignment["test"], "train_folds": assignment["train"],
            "select_folds": assignment["select"], "seeds": [s for _, ss in members for s in ss],
        }  # fmt: skip
        if args.fold_ensemble:
            held["members"] = [
                {"select_folds": sel, "seeds": ss,
                 "train_folds": untouched_split(cv_folds, sel)["train"]} for sel, ss in members
            ]  # fmt: skip
        results["untouched"] = held
        rows: dict[str, list[dict[str, Any]]] = {r: [] for r in recipes}
        walls = dict.fromkeys(recipes, 0.0)
        ids, targets = None, None
        for sel, member_seeds in members:
            before, walls0 = {r: list(v) for r, v in rows.items()}, dict(walls)

            def done_held(new, new_walls, sel=sel, before=before, walls0=walls0):
                for r in recipes:
                    rows[r] = before[r] + [x | {"select_folds": sel} for x in new[r]]
                    walls[r] = walls0[r] + new_walls[r]
                held.update({"per_run": rows, "wall_s": walls, "summary": finish(rows),
                             "n_runs_per_recipe": max(len(v) for v in rows.values())})  # fmt: skip
                save(results)

            name = (
                "untouched" if len(members) == 1 else f"untouched-select{'-'.join(map(str, sel))}"
            )
            _, _, (member_ids, member_targets) = run_split(
                args, shared, untouched_split(cv_folds, sel), work / name, member_seeds,
                recipes, done_held,
            )  # fmt: skip
            if ids is not None and member_ids != ids:
                raise RuntimeError("fold-ensemble members scored different test records")
            ids, targets = member_ids, member_targets
        assert ids is not None and targets is not None
        held["record_ids"] = ids
        held["targets"] = targets.astype(int).tolist()
        held["patients"] = [patients[r] for r in ids]
        held["n_test_records"] = len(ids)
        held["n_test_patients"] = len({patients[r] for r in ids})
        own = score_sets(held)
        sets = dict(own)
        if args.reference is not None:
            reference = json.loads(args.reference.read_text())["untouched"]
            if reference["record_ids"] != ids:
                raise RuntimeError(f"{args.reference}: other test records than this run")
            sets |= score_sets(reference, prefix="ref:")
            held["reference"] = str(args.reference)
        held["comparisons"] = compare(
            sets, comparison_pairs(own, args.reference is not None), targets,
            held["patients"], args.bootstrap, args.seed,
        )  # fmt: skip
        if "default" in recipes and "baseline" in recipes:
            paired = paired_bootstrap(
                targets,
                [np.asarray(r["test_scores"]) for r in rows["default"]],
                [np.asarray(r["test_scores"]) for r in rows["baseline"]],
                [patients[r] for r in ids],
                n=args.bootstrap,
                seed=args.seed,
            )
            draws = paired.pop("_draws")
            held["paired"] = {"a": "default", "b": "baseline", **paired}
    results["partial"] = False
    results["total_s"] = time.perf_counter() - started
    return results, draws


if __name__ == "__main__":
    main()
