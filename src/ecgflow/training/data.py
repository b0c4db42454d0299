"""Datasets over the preprocess stage's shards, and the samplers the trainers use.

A split's shards are memory-mapped, not loaded: a row is copied out only when a batch needs it,
so memory does not grow with the data. Rows are the preprocess output's samples (one per
record, or one per window).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset, Sampler

from ecgflow.artifacts import INDEX, PREPROCESS_JSON
from ecgflow.errors import EcgflowError


class ShardRows:
    """The rows of one split of a preprocess output, addressed 0…n-1."""

    def __init__(self, data_dir: Path, split: str) -> None:
        self.data_dir = Path(data_dir)
        folder = self.data_dir / split
        path = folder / INDEX
        if not path.is_file():
            raise EcgflowError(f"{path}: not found (no '{split}' split in the preprocess output)")
        index = pq.read_table(path, columns=["record_id", "shard", "row"]).to_pandas()
        self.index = index
        self.record_ids: list[str] = index["record_id"].astype(str).tolist()
        self._shards = {
            int(s): np.load(folder / f"shard-{int(s):05d}.npy", mmap_mode="r")
            for s in index["shard"].unique()
        }
        self._where = list(zip(index["shard"].astype(int), index["row"].astype(int), strict=True))

    def __len__(self) -> int:
        return len(self._where)

    def signal(self, i: int) -> np.ndarray:
        """Row ``i`` as a float32 ``[C, T]`` array (a copy)."""
        shard, row = self._where[i]
        return np.array(self._shards[shard][row], dtype=np.float32)


def preprocess_info(data_dir: Path) -> dict:
    """``preprocess.json`` of a preprocess output (channels, fs, n_times, splits, params)."""
    path = Path(data_dir) / PREPROCESS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--data must be a preprocess output)") from None
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None


class SignalTextDataset(Dataset):
    """(signal, text) pairs for contrastive training; rows whose record has no text are left out."""

    def __init__(self, rows: ShardRows, texts: dict[str, str]) -> None:
        self.rows = rows
        self.keep = [i for i, rid in enumerate(rows.record_ids) if texts.get(rid, "").strip()]
        self.texts = [texts[rows.record_ids[i]] for i in self.keep]
        self.left_out = len(rows) - len(self.keep)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return torch.from_numpy(self.rows.signal(self.keep[i])), self.texts[i]


class SignalLabelDataset(Dataset):
    """(signal, multi-hot float32 target) pairs; rows of records without labels are left out."""

    def __init__(self, rows: ShardRows, labels: pd.DataFrame, names: list[str]) -> None:
        self.rows = rows
        table = labels.set_index(labels["record_id"].astype(str))
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise EcgflowError(f"labels.parquet lacks the label columns {missing}")
        by_record = table[names].to_numpy(dtype=np.float32)
        position = {rid: k for k, rid in enumerate(table.index)}
        self.keep = [i for i, rid in enumerate(rows.record_ids) if rid in position]
        self.targets = (
            np.stack([by_record[position[rows.record_ids[i]]] for i in self.keep])
            if self.keep
            else np.zeros((0, len(names)), dtype=np.float32)
        )
        self.left_out = len(rows) - len(self.keep)

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.rows.signal(self.keep[i])), torch.from_numpy(self.targets[i])


class EpochSampler(Sampler[int]):
    """A rank's share of a seeded per-epoch order, optionally drawn by weight.

    Without weights: a permutation of all rows (``shuffle``) or their order, padded to a
    multiple of the world size, every ``world_size``-th row from ``rank`` (as
    ``DistributedSampler``). With ``weights``: ``len(weights)`` rows drawn with replacement in
    proportion to the weights, split the same way. ``draws``: that many rows drawn with
    replacement instead (by ``weights``, uniformly without). The
    order depends only on (seed, epoch), so a resumed run sees exactly the batches it would
    have seen.
    """

    def __init__(
        self,
        n: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        draws: int | None = None,
    ) -> None:
        if draws is not None and weights is None:
            weights = np.ones(n)
        self.n = n if draws is None else draws
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.epoch = 0
        self.per_rank = math.ceil(self.n / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to give."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        total = self.per_rank * self.world_size
        if total > self.n:
            order = torch.cat([order, order[: total - self.n]])
        return iter(order[self.rank : total : self.world_size].tolist())


def inverse_prevalence_weights(targets: np.ndarray) -> np.ndarray:
    """Per row: the largest 1 / prevalence among its positive labels (1 / P(no label) if none).

    Rows carrying a rare label are drawn as often as rows of the common ones.
    """
    prevalence = np.clip(targets.mean(axis=0), 1e-6, None)
    per_label = np.where(targets > 0, 1.0 / prevalence, 0.0).max(axis=1)
    none = per_label == 0
    if none.any():
        per_label[none] = 1.0 / max(none.mean(), 1e-6)
    return per_label
