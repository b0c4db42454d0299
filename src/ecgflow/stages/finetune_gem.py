"""The finetune-gem stage: the multimodal LLM (:mod:`ecgflow.models.gem`) on the shared core.

Inputs: a train-clip output (its ECG encoder becomes the signal tower), a preprocess output
(signals of the ``train`` and ``val`` splits; for noise and drift questions preprocess with
``--no-baseline --bandpass none --normalise scale`` so the signal keeps what they are about),
a build-instructions output (``train.json``, ``val.json``) and optionally a render-images
output (paper images, for the image tower). Training: LoRA on the LM plus the towers and the
projector, the answer tokens' NLL; rows are drawn by weight so that within each (kind,
template, attribute) every answer is drawn equally often. Two stages with their own learning
rates: the towers and projector alone for ``projector_share`` of the steps (``tower_lr``), then
LoRA joins (``train.lr``, its own warm-up). Selection and early stopping: the mean over
question families (ECG-QA, noise, label, feature) of the val closed-set questions' balanced
accuracy (the families take turns in the ``eval_questions`` scored), answers chosen by
candidate likelihood.
With the best model the stage also fits, on those same val questions' candidate scores, the
closed-set calibration (per (source, template, attribute) option offsets,
:mod:`ecgflow.models.gem_calibration`; label questions stay raw, :data:`RAW_DECIDED`), and
at the end, on the training questions, the evidence-only baseline
(:mod:`ecgflow.models.gem_baseline`) that eval-gem reports beside GEM.

Output (``out_dir``)::

    model/                        the best GEM folder (see ecgflow.models.gem_io), plus
                                  preprocess.json (serving prepares input the same way) and
                                  answer_prior.json (the label-prior baseline's counts),
                                  calibration.json (closed-set offsets, applied by load_gem),
                                  evidence_baseline.json (the no-LM baseline) and, when the
                                  instructions carry evidence, evidence.json with the
                                  instructions' lead_quality.json and classifier/ (serving
                                  and eval-gem measure the same evidence)
    checkpoints/, metrics.json    as train-clip
    skipped.json                  instructions left out, with the reason
    manifest.json                 inputs, params, counts, sha256 of every file
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ecgflow import progress
from ecgflow.artifacts import (
    EVIDENCE_CLASSIFIER,
    LEAD_QUALITY,
    MODEL,
    MODEL_ONNX,
    RECORD_EVIDENCE,
    SKIPPED,
)
from ecgflow.errors import EcgflowError
from ecgflow.evaluation.qa import AnswerPrior, qa_metrics
from ecgflow.manifest import sha256_file, write_manifest, writes_output
from ecgflow.models.gem_calibration import (
    ECGQA,
    GENERATED,
    FitItem,
    decide,
    fit_calibration,
    question_group,
)
from ecgflow.models.gem_io import save_gem
from ecgflow.models.io import load_ecg_encoder_state
from ecgflow.params import FinetuneGemParams
from ecgflow.training.data import ShardRows, preprocess_info
from ecgflow.training.distributed import init_distributed, shutdown
from ecgflow.training.gem_data import (
    GemExample,
    ImageLookup,
    RecordSignals,
    read_instructions,
)
from ecgflow.training.loop import fit, seed_everything
from ecgflow.training.worker import Launch, launch_elsewhere

log = logging.getLogger(__name__)

ANSWER_PRIOR = "answer_prior.json"
TASK = "finetune-gem"
#: what each torchrun process calls (see ecgflow.training.worker)
ENTRY = f"{__name__}:run_request"
CLIP_MODEL = "model"  # train-clip's model folder


@dataclass(frozen=True)
class GemPaths:
    """The stage's input and output folders."""

    encoder_dir: Path
    data_dir: Path
    instructions_dir: Path
    images_dir: Path | None
    out_dir: Path

    def to_json(self) -> dict[str, str | None]:
        """Paths as strings (a torchrun request)."""
        return {k: None if v is None else str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> GemPaths:
        """The inverse of :meth:`to_json`."""
        images = data.get("images_dir")
        return cls(
            Path(str(data["encoder_dir"])),
            Path(str(data["data_dir"])),
            Path(str(data["instructions_dir"])),
            None if images is None else Path(images),
            Path(str(data["out_dir"])),
        )


@writes_output("finetune-gem", out="paths.out_dir")
def finetune_gem(
    params: FinetuneGemParams,
    paths: GemPaths,
    resume: bool = False,
    launch: Launch | None = None,
) -> dict:
    """Train GEM (see the module docstring); returns ``metrics.json``.

    ``launch`` runs the job elsewhere (a TrainJob); by default it trains here, under
    torchrun when ``params.nproc`` > 1.
    """
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    done = launch_elsewhere(TASK, ENTRY, params, paths.to_json(), paths.out_dir, resume, launch)
    if done is not None:
        return done
    return _train(params, paths, resume)


def run_request(request: dict[str, Any]) -> None:
    """Entry point of each torchrun process (see :mod:`ecgflow.training.worker`)."""
    _train(
        FinetuneGemParams.model_validate(request["params"]),
        GemPaths.from_json(request["paths"]),
        bool(request["resume"]),
    )


def _train(params: FinetuneGemParams, paths: GemPaths, resume: bool) -> dict[str, Any]:
    env = init_distributed(params.train.device)
    try:
        seed_everything(params.train.seed)
        task = GemTask(params, paths)
        result = fit(task, params.train, paths.out_dir, env, resume)
        summary = result.to_json(task.selection_metric, env.world_size)
        if env.is_main:
            _write_json(paths.out_dir / SKIPPED, task.skipped)
            if (paths.out_dir / MODEL / "gem.json").is_file():
                task.save_evidence_baseline(paths.out_dir / MODEL)
            inputs = {
                "encoder": sha256_file(paths.encoder_dir / CLIP_MODEL / "model.safetensors"),
                "preprocess.json": sha256_file(paths.data_dir / "preprocess.json"),
                "train.json": sha256_file(paths.instructions_dir / "train.json"),
                "val.json": sha256_file(paths.instructions_dir / "val.json"),
                **{
                    name: sha256_file(paths.instructions_dir / name)
                    for name in (LEAD_QUALITY, RECORD_EVIDENCE)
                    if (paths.instructions_dir / name).is_file()
                },
                **(
                    {"classifier": sha256_file(classifier)}
                    if (
                        classifier := paths.instructions_dir / EVIDENCE_CLASSIFIER / MODEL_ONNX
                    ).is_file()
                    else {}
                ),
            }
            write_manifest(
                paths.out_dir,
                stage=TASK,
                inputs=inputs,
                params=params.model_dump(mode="json"),
                counts={
                    "train_instructions": len(task.train_dataset),
                    "val_questions": len(task.val),
                    "skipped": len(task.skipped),
                },
            )
    finally:
        shutdown(env)
    return summary


class GemDataset(Dataset):
    """Instructions as (signal, question, answer, image) samples."""

    def __init__(
        self, examples: list[GemExample], signals: RecordSignals, images: ImageLookup | None
    ) -> None:
        self.examples, self.signals, self.images = examples, signals, images

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, str, torch.Tensor | None]:
        example = self.examples[i]
        image = None if self.images is None else self.images.load(example.record_id)
        return self.signals.get(example.record_id), example.prompt, example.answer, image


def collate_gem(batch: list[tuple[torch.Tensor, str, str, torch.Tensor | None]]) -> dict:
    """Stack signals (and images); keep questions and answers as lists."""
    images = [b[3] for b in batch]
    return {
        "signals": torch.stack([b[0] for b in batch]),
        "questions": [b[1] for b in batch],
        "answers": [b[2] for b in batch],
        "images": None if images[0] is None else torch.stack(images),  # type: ignore[misc]
    }


class GemTask:
    """finetune-gem as a :class:`~ecgflow.training.loop.Task`."""

    name = TASK

    def __init__(self, params: FinetuneGemParams, paths: GemPaths) -> None:
        from ecgflow.models.gem import GemModel
        from ecgflow.models.language_model import load_language_model

        self.settings, self.paths = params, paths
        self.selection_metric = params.selection_metric
        self.epoch_samples = params.epoch_samples
        info = preprocess_info(paths.data_dir)
        state, encoder = load_ecg_encoder_state(paths.encoder_dir / CLIP_MODEL)
        channels = int(info["n_channels"])
        if encoder.in_channels != channels:
            raise EcgflowError(
                f"{paths.encoder_dir}: the encoder takes {encoder.in_channels} channels, "
                f"{paths.data_dir} has {channels}; preprocess with the same lead mode"
            )
        leads = [str(c) for c in info.get("channels") or params.model.leads]
        self.config = params.model.model_copy(update={"encoder": encoder, "leads": leads})
        if self.config.image and paths.images_dir is None:
            raise EcgflowError("finetune-gem: model.image is on, so --images RENDER_DIR is needed")
        images = (
            ImageLookup(paths.images_dir, self.config.image_size) if self.config.image else None
        )
        self.skipped: list[dict[str, str]] = []
        train = self._examples("train", images, set(params.kinds))
        val = self._examples("val", images, set(params.kinds))
        signals = RecordSignals([ShardRows(paths.data_dir, s) for s in ("train", "val")])
        self.train_dataset = GemDataset(train, signals, images)
        self.val = GemDataset(_eval_subset(val, params.eval_questions), signals, images)
        if not train:
            raise EcgflowError(f"{paths.instructions_dir}: no usable training instruction")
        if len(self.val) < 2:
            raise EcgflowError(
                f"{paths.instructions_dir}/val.json: {len(self.val)} closed-set questions "
                "with signals; need at least 2 to select a model"
            )
        self.reads_evidence = any(e.evidence for e in train)
        balanced = (
            answer_balancing_weights(train) if params.balance_answers else np.ones(len(train))
        )
        self.sample_weights = with_kind_shares(balanced, train, params.kind_shares.model_dump())
        self.prior = answer_prior(train)
        self.fs = float(info["fs"])
        self._val_scores: list[list[float]] = []
        lm, tokenizer, self.lm_source = load_language_model(self.config.lm)
        self.model = GemModel(self.config, lm, tokenizer)
        self.model.signal_tower.encoder.load_state_dict(state)

    def _examples(
        self, split: str, images: ImageLookup | None, kinds: set[str]
    ) -> list[GemExample]:
        path = self.paths.instructions_dir / f"{split}.json"
        examples, skipped = read_instructions(path, kinds)
        self.skipped += skipped
        rows = ShardRows(self.paths.data_dir, split)
        present = set(rows.record_ids)
        kept = []
        for example in examples:
            if example.record_id not in present:
                reason = f"{path}: record {example.record_id} has no signal in the {split} split"
                self.skipped.append({"id": example.id, "reason": reason})
            elif images is not None and not images.has(example.record_id):
                reason = f"{path}: record {example.record_id} has no paper image"
                self.skipped.append({"id": example.id, "reason": reason})
            else:
                kept.append(example)
        return kept

    def collate(self, batch: list[Any]) -> dict[str, Any]:
        """See :func:`collate_gem`."""
        return collate_gem(batch)

    def loss(self, model: nn.Module, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        """Mean per-answer NLL."""
        images = batch["images"]
        return model(
            batch["signals"].to(device),
            batch["questions"],
            batch["answers"],
            None if images is None else images.to(device),
        )

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """QA (balanced) accuracy of the val closed-set questions (raw argmax), and the prior's.

        The candidates' scores are kept: :meth:`save_best` fits the calibration on them.
        """
        examples = self.val.examples
        self._val_scores = score_closed_set(model, self.val, device, self.settings.eval_batch_size)
        predicted = [
            decide(list(e.candidates or ()), s)[0]
            for e, s in zip(examples, self._val_scores, strict=True)
        ]
        truth = [e.answer for e in examples]
        templates = [e.template_id for e in examples]
        metrics = qa_metrics(truth, predicted, templates)
        prior = [self.prior.predict(prior_key(e), e.attribute) for e in examples]
        baseline = qa_metrics(truth, prior, templates)
        families = family_balanced_accuracy(examples, predicted)
        return {
            "qa_accuracy": metrics["qa_accuracy"],
            "qa_balanced_accuracy": metrics["qa_balanced_accuracy"],
            "family_balanced_accuracy": float(np.mean(list(families.values()))),
            **{f"{family}_balanced_accuracy": v for family, v in families.items()},
            "prior_qa_accuracy": baseline["qa_accuracy"],
            "prior_qa_balanced_accuracy": baseline["qa_balanced_accuracy"],
        }

    def optimizer_groups(self, config: Any) -> list[dict[str, Any]]:
        """Two stages of AdamW groups (weight decay on matrices only).

        The towers and projector at ``tower_lr`` from the start; LoRA at ``train.lr`` from
        ``projector_share`` of the epochs on, with its own warm-up.
        """
        towers: list[nn.Parameter] = []
        lora: list[nn.Parameter] = []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (lora if "lora_" in name else towers).append(param)
        groups = []
        stages = (
            (towers, self.settings.tower_lr, 0.0),
            (lora, config.lr, self.settings.projector_share * config.epochs),
        )
        for params, lr, start in stages:
            for decayed in (True, False):
                groups.append(
                    {
                        "params": [p for p in params if (p.ndim >= 2) == decayed],
                        "weight_decay": config.weight_decay if decayed else 0.0,
                        "lr": lr,
                        "start_epoch": start,
                    }
                )
        return groups

    def save_best(self, model: nn.Module, folder: Path) -> None:
        """GEM folder, preprocess.json, the answer prior and the calibration → ``folder/model``."""
        target = folder / MODEL
        save_gem(target, model, self.lm_source.name)
        shutil.copyfile(self.paths.data_dir / "preprocess.json", target / "preprocess.json")
        _write_json(target / ANSWER_PRIOR, self.prior.to_json())
        self.fit_calibration().save(target)
        if self.reads_evidence:
            from ecgflow.models.gem_evidence import EvidenceReader
            from ecgflow.models.lead_quality import load_lead_quality

            lead_quality = load_lead_quality(self.paths.instructions_dir / LEAD_QUALITY)
            classifier = self.paths.instructions_dir / EVIDENCE_CLASSIFIER
            shipped = classifier if (classifier / MODEL_ONNX).is_file() else None
            EvidenceReader(lead_quality, shipped).save(target)

    def fit_calibration(self) -> Any:
        """The calibration fitted on the val questions' scores of the last :meth:`evaluate`."""
        items = [
            FitItem(
                group=question_group(e.kind, e.template_id, e.attribute),
                options=tuple(e.candidates or ()),
                scores=tuple(s),
                truth=e.answer,
                question=e.question,
            )
            for e, s in zip(self.val.examples, self._val_scores, strict=True)
        ]
        texts = [
            (e.question, question_group(e.kind, e.template_id, e.attribute))
            for e in self.train_dataset.examples
            if e.candidates
        ]
        calibration = fit_calibration(items, questions=texts, keep_raw=RAW_DECIDED)
        log.info("finetune-gem: calibration fitted on %d val questions", len(items))
        return calibration

    def save_evidence_baseline(self, target: Path) -> None:
        """Fit the evidence-only baseline on the closed-set training questions → ``target``."""
        from ecgflow.models.gem_baseline import fit_evidence_baseline

        examples = [e for e in self.train_dataset.examples if e.candidates]
        if not examples:
            return
        evidence = EvidenceCache(
            self.train_dataset.signals, self.fs, self.config.leads, self.evidence_source(target)
        )
        features = np.stack([evidence.features(e) for e in examples])
        groups = [question_group(e.kind, e.template_id, e.attribute) for e in examples]
        fit_evidence_baseline(groups, features, [e.answer for e in examples]).save(target)

    def evidence_source(self, model_dir: Path) -> Any:
        """Each training record's stored evidence (out-of-fold lead quality), else measured."""
        from ecgflow.models.gem_evidence import (
            EvidenceSource,
            load_evidence_reader,
            read_record_evidence,
            scale_mv,
        )

        stored = read_record_evidence(self.paths.instructions_dir / RECORD_EVIDENCE)
        reader = load_evidence_reader(model_dir)
        scale = scale_mv(preprocess_info(self.paths.data_dir))
        return EvidenceSource(stored, reader, self.fs, self.config.leads, scale)

    def params(self) -> dict[str, Any]:
        """What MLflow records."""
        return {
            "model": self.config.model_dump(mode="json", exclude={"encoder"}),
            "lm": self.lm_source.name,
            "kinds": self.settings.kinds,
            "epoch_samples": self.settings.epoch_samples,
            "balance_answers": self.settings.balance_answers,
            "projector_share": self.settings.projector_share,
            "tower_lr": self.settings.tower_lr,
            "train_instructions": len(self.train_dataset),
            "val_questions": len(self.val),
        }


def gem_batches(
    dataset: GemDataset, batch_size: int, device: torch.device
) -> Iterator[tuple[list[GemExample], dict[str, Any]]]:
    """``dataset`` in order, ``batch_size`` examples at a time, collated and on ``device``."""
    with progress.task("GEM answers", len(dataset)) as bar:
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            batch = collate_gem([dataset[i] for i in range(start, stop)])
            batch["signals"] = batch["signals"].to(device)
            if batch["images"] is not None:
                batch["images"] = batch["images"].to(device)
            yield dataset.examples[start:stop], batch
            bar.update(done=stop)


def score_closed_set(
    model: nn.Module, dataset: GemDataset, device: torch.device, batch_size: int
) -> list[list[float]]:
    """Raw candidate scores for every example of ``dataset`` (all must have candidates)."""
    out: list[list[float]] = []
    for examples, batch in gem_batches(dataset, batch_size, device):
        out += model.candidate_scores(
            batch["signals"],
            batch["questions"],
            [list(e.candidates or ()) for e in examples],
            batch["images"],
        )
    return out


class EvidenceCache:
    """The evidence baseline's features per question, each record's evidence computed once.

    ``source`` gives each record's lead-quality probabilities (the evidence text's); without
    it they are zeros.
    """

    def __init__(
        self, signals: RecordSignals, fs: float, leads: list[str], source: Any = None
    ) -> None:
        self.signals, self.fs, self.leads, self.source = signals, fs, leads, source
        self._records: dict[str, Any] = {}

    def evidence(self, record_id: str) -> Any:
        """The record's :class:`~ecgflow.models.gem_baseline.Evidence` (computed once)."""
        evidence = self._records.get(record_id)
        if evidence is None:
            x = self.signals.get(record_id).numpy()
            quality = None if self.source is None else self.source.quality(record_id, x)
            evidence = record_evidence(x, self.fs, self.leads, quality)
            self._records[record_id] = evidence
        return evidence

    def features(self, example: GemExample) -> np.ndarray:
        """:func:`ecgflow.models.gem_baseline.question_features` of ``example``."""
        from ecgflow.models.gem_baseline import question_features

        evidence = self.evidence(example.record_id)
        return question_features(evidence, example.question, self.leads, example.attribute)


def record_evidence(
    x: np.ndarray, fs: float, leads: list[str], quality: np.ndarray | None = None
) -> Any:
    """The evidence-only baseline's evidence of one ``[C, T]`` record (see models.gem_baseline).

    ``quality``: the record's ``[C, 4]`` lead-quality probabilities, when known.
    """
    import math

    from ecgflow.models.gem_baseline import Evidence
    from ecgflow.signal.quality import noise_ratio
    from ecgflow.signal.rhythm import measure_rhythm

    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    diff = np.diff(x, axis=-1)
    width = max(int(0.2 * fs), 1)
    kernel = np.ones(width) / width
    slow = np.stack([np.convolve(row, kernel, mode="valid") for row in x])
    crossings = (np.diff(np.signbit(diff), axis=-1) != 0).mean(axis=-1)
    stats = np.stack(
        [
            np.log(x.std(axis=-1) + 1e-3),
            np.log(diff.std(axis=-1) + 1e-3),
            np.log(slow.max(axis=-1) - slow.min(axis=-1) + 1e-3),
            np.nan_to_num(noise_ratio(x, fs)),
            crossings,
        ],
        axis=1,
    )
    rhythm = measure_rhythm(x, fs, list(leads))
    missing = not math.isfinite(rhythm.heart_rate_bpm)
    axis = math.radians(rhythm.axis_deg) if math.isfinite(rhythm.axis_deg) else math.nan
    values = [
        0.0 if missing else rhythm.heart_rate_bpm / 100.0,
        0.0 if missing or not math.isfinite(rhythm.rr_cv) else rhythm.rr_cv,
        0.0 if math.isnan(axis) else math.cos(axis),
        0.0 if math.isnan(axis) else math.sin(axis),
        float(missing),
    ]
    return Evidence(stats, np.array(values), quality)


def answer_prior(examples: list[GemExample]) -> AnswerPrior:
    """The label-prior baseline fitted on training questions: (source, template, attribute).

    Questions without a template (labels, measured features) are keyed by their kind, so each
    attribute ("heart axis", "tachycardia", …) gets its own majority answer.
    """
    return AnswerPrior((prior_key(e), e.attribute, e.answer) for e in examples)


def prior_key(example: GemExample) -> Any:
    """The prior's template key: the template id (else the kind), ``"ecgqa:"``-prefixed for ECG-QA.

    ECG-QA's and the generated questions keep separate priors even where template ids coincide.
    """
    source, _, _ = question_group(example.kind, example.template_id, example.attribute)
    template = example.kind if example.template_id is None else example.template_id
    return f"{source}:{template}" if source == ECGQA else template


def answer_balancing_weights(examples: list[GemExample]) -> np.ndarray:
    """Per example: group size / (answers in the group × count of its answer in the group).

    A group is (kind, template, attribute); each group keeps its share of the draws, and within
    it every distinct answer is drawn equally often (yes as often as no).
    """
    groups = [(e.kind, e.template_id, e.attribute) for e in examples]
    sizes = Counter(groups)
    answers = Counter(zip(groups, (e.answer for e in examples), strict=True))
    distinct = Counter(group for group, _ in answers)
    return np.array(
        [
            sizes[g] / (distinct[g] * answers[(g, e.answer)])
            for g, e in zip(groups, examples, strict=True)
        ],
        dtype=np.float64,
    )


def with_kind_shares(
    weights: np.ndarray, examples: list[GemExample], shares: dict[str, float]
) -> np.ndarray:
    """Scale ``weights`` so each kind's draws are its share (normalised over present kinds).

    Within a kind the relative weights stay (groups keep their share, answers their balance).
    """
    kinds = [e.kind for e in examples]
    present = sorted(set(kinds))
    total = sum(shares.get(k, 0.0) for k in present)
    if total <= 0:
        raise EcgflowError(
            f"finetune-gem: kind_shares give the kinds trained on {present} no draws"
        )
    out = np.asarray(weights, dtype=np.float64).copy()
    mask = np.array(kinds)
    for kind in present:
        rows = mask == kind
        out[rows] *= shares.get(kind, 0.0) / total / out[rows].sum()
    return out


#: Question groups decided by the raw scores, not calibrated. Label questions: the evidence
#: states the classifier's calls at its F1-tuned thresholds and GEM copies them; a likelihood
#: calibration pulls them toward the majority "no" (on all 405 val label questions of the
#: issue-30 run: macro F1 0.589 raw, 0.405 calibrated).
RAW_DECIDED: tuple[tuple[str, ...], ...] = ((GENERATED, "label"),)


def family_balanced_accuracy(examples: list[GemExample], predicted: list[str]) -> dict[str, float]:
    """Balanced accuracy per question family (the kind: ecgqa, noise, label, feature)."""
    from ecgflow.evaluation.qa import scores

    by_family: dict[str, tuple[list[str], list[str]]] = {}
    for example, answer in zip(examples, predicted, strict=True):
        truth, guess = by_family.setdefault(example.kind, ([], []))
        truth.append(example.answer)
        guess.append(answer)
    return {
        family: float(scores(truth, guess)["balanced_accuracy"])
        for family, (truth, guess) in sorted(by_family.items())
    }


def _eval_subset(examples: list[GemExample], limit: int) -> list[GemExample]:
    """Up to ``limit`` closed-set examples, the families (kinds) taking turns.

    Each family's examples are in a seeded order (ECG-QA's as in the file), so every family
    is represented in model selection however many questions another family has.
    """
    by_kind: dict[str, list[GemExample]] = {}
    for example in examples:
        if example.candidates:
            by_kind.setdefault(example.kind, []).append(example)
    rng = random.Random(0)
    queues = []
    for kind in sorted(by_kind, key=lambda k: (k != "ecgqa", k)):
        items = by_kind[kind]
        if kind != "ecgqa":
            rng.shuffle(items)
        queues.append(items)
    chosen: list[GemExample] = []
    for position in range(max((len(q) for q in queues), default=0)):
        chosen += [q[position] for q in queues if position < len(q)]
    return chosen[:limit]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
