"""GEM's inputs: instruction files, signals by record id, paper images by record id.

Instruction files are build-instructions' ``train.json`` / ``val.json`` (LLaVA-style, one
single-turn conversation each). A record's signal is its first row in the preprocess output
(its first window when preprocess made windows); its image is the render stage's paper image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image, UnidentifiedImageError

from ecgflow.artifacts import IMAGES
from ecgflow.errors import EcgflowError
from ecgflow.text.evidence import split_turn
from ecgflow.training.data import ShardRows

PAPER = "paper"


@dataclass(frozen=True)
class GemExample:
    """One question about one record, with its reference answer and scoring metadata."""

    id: str
    record_id: str
    question: str
    answer: str
    kind: str
    template_id: Any = None
    attribute: Any = None
    candidates: tuple[str, ...] | None = None
    evidence: str | None = None  # the record's evidence lines (ecgflow.text.evidence)

    @property
    def prompt(self) -> str:
        """What the model reads: ``<ecg>``, the evidence lines (if any), the question."""
        from ecgflow.text.evidence import with_evidence

        return with_evidence(self.question, self.evidence)


def read_instructions(path: Path, kinds: set[str]) -> tuple[list[GemExample], list[dict[str, str]]]:
    """The examples of ``path`` whose kind is in ``kinds``, and the entries left out (why)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(
            f"{path}: not found (--instructions must be a build-instructions output)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, list):
        raise EcgflowError(f"{path}: expected a JSON list of instructions")
    examples, skipped = [], []
    for position, entry in enumerate(data):
        where = f"{path} entry {position}"
        try:
            example = _example(entry)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            skipped.append({"id": str(position), "reason": f"{where}: malformed ({exc})"})
            continue
        if example.kind in kinds:
            examples.append(example)
    return examples, skipped


def _example(entry: dict[str, Any]) -> GemExample:
    turns = entry["conversations"]
    if len(turns) != 2 or turns[0]["from"] != "human" or turns[1]["from"] != "gpt":
        raise ValueError("expected one human turn and one gpt turn")
    meta = entry.get("meta") or {}
    candidates = meta.get("candidates")
    question = str(turns[0]["value"])
    evidence = meta.get("evidence")
    if evidence:  # the human turn is with_evidence(question, evidence): keep them apart
        try:
            question = split_turn(question, str(evidence))
        except ValueError:
            raise ValueError("meta.evidence is not the human turn's evidence") from None
    return GemExample(
        id=str(entry["id"]),
        record_id=str(entry["record_id"]),
        question=question,
        answer=str(turns[1]["value"]),
        kind=str(meta.get("kind") or "other"),
        template_id=meta.get("template_id"),
        attribute=meta.get("attribute"),
        candidates=tuple(str(c) for c in candidates) if candidates else None,
        evidence=str(evidence) if evidence else None,
    )


class RecordSignals:
    """Signals by record id over one or more splits of a preprocess output."""

    def __init__(self, splits: list[ShardRows]) -> None:
        self._where: dict[str, tuple[ShardRows, int]] = {}
        for rows in splits:
            for i, record_id in enumerate(rows.record_ids):
                self._where.setdefault(record_id, (rows, i))

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._where

    def get(self, record_id: str) -> torch.Tensor:
        """The record's float32 ``[C, T]`` signal."""
        rows, i = self._where[record_id]
        return torch.from_numpy(rows.signal(i))


class ImageLookup:
    """Paper images by record id from a render-images output, as ``[1, H, W]`` in [0, 1]."""

    def __init__(self, render_dir: Path, width: int) -> None:
        self.render_dir = Path(render_dir)
        self.width = width
        path = self.render_dir / IMAGES
        try:
            table = pq.read_table(path, columns=["record_id", "kind", "segment", "path"])
        except FileNotFoundError:
            raise EcgflowError(
                f"{path}: not found (--images must be a render-images output)"
            ) from None
        frame = table.to_pandas()
        frame = frame[frame["kind"] == PAPER].sort_values(["record_id", "segment"])
        self._paths = dict(zip(frame["record_id"].astype(str), frame["path"], strict=True))

    def has(self, record_id: str) -> bool:
        """Whether the record has a paper image."""
        return record_id in self._paths

    def load(self, record_id: str) -> torch.Tensor:
        """The record's paper image, grayscale, resized to ``width`` (aspect ratio kept)."""
        return load_paper_image(self.render_dir / self._paths[record_id], self.width)


def load_paper_image(path: Path | Any, width: int) -> torch.Tensor:
    """A PNG (path or file object) as a grayscale ``[1, H, W]`` float tensor in [0, 1]."""
    try:
        with Image.open(path) as image:
            gray = image.convert("L")
    except (OSError, UnidentifiedImageError) as exc:
        raise EcgflowError(f"{path}: not a readable image ({exc})") from None
    height = max(round(gray.height * width / gray.width), 1)
    resized = gray.resize((width, height), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)[None]
