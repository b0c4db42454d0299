"""Multi-label iterative stratification over groups (patients) of records.

:func:`iterative_stratification` is Algorithm 1 of Sechidis, Tsoumakas & Vlahavas, "On the
stratification of multi-label data" (ECML PKDD 2011), applied to *groups* instead of single
examples, so that every group (a patient) lands in exactly one subset:

* a group's label vector is the sum of its records' multi-hot vectors (positives in records),
  and its size is its number of records; every desired count is measured in records;
* subset ``j`` wants ``c_j = N * r_j`` records in all and ``c_j^l = N_l * r_j`` positives of
  label ``l`` (``N_l``: positives of ``l`` over all records);
* repeatedly take the label with the fewest positives still unassigned (ties at random) and
  place each unassigned group carrying it — larger groups first, equal sizes in random order —
  into the subset that most wants that label (largest ``c_j^l``); ties go to the subset that
  wants the most records (largest ``c_j``), then at random. The subset's ``c_j`` and ``c_j^l``
  (for every label of the group) drop by the group's counts;
* groups with no positive label are placed last, by size alone (largest ``c_j``), as in the
  paper.

Rare labels are placed first, while every subset still wants them, which is what spreads
their few positives across the subsets. A subset whose ratio is 0 receives nothing. All
randomness comes from the ``numpy.random.Generator`` passed in, so a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: Two desired counts closer than this are a tie (they are sums of the same float steps).
_TIE = 1e-9


def group_rows(keys: Sequence[str]) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """Group rows by key: ``(sorted unique keys, group index of every row)``.

    Groups are numbered in key order, so the grouping does not depend on the row order.
    """
    unique, inverse = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    return unique, inverse.reshape(-1)


def group_label_counts(
    labels: npt.ArrayLike, group_of_row: npt.NDArray[np.intp], n_groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per group: positives of each label (summed over its rows) and number of rows."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.zeros((n_groups, labels.shape[1]), dtype=np.int64)
    np.add.at(counts, group_of_row, labels)
    sizes = np.bincount(group_of_row, minlength=n_groups).astype(np.int64)
    return counts, sizes


def iterative_stratification(
    labels: npt.ArrayLike,
    ratios: Sequence[float],
    rng: np.random.Generator,
    sizes: npt.ArrayLike | None = None,
) -> npt.NDArray[np.intp]:
    """Assign each group to one of ``len(ratios)`` subsets, stratified on its labels.

    Args:
        labels: ``[n_groups, n_labels]`` non-negative integer counts — for a group of records,
            how many of its records carry each label (0/1 for single examples).
        ratios: desired fraction of the records for each subset (non-negative, summing to 1).
        rng: source of every random choice (tie-breaking, order of equal-sized groups).
        sizes: records per group (default 1 each); desired subset sizes count records.

    Returns:
        ``[n_groups]`` subset index in ``0 .. len(ratios) - 1``.

    """
    counts = np.asarray(labels, dtype=np.int64)
    if counts.ndim != 2:
        raise ValueError(f"labels must be 2-D [groups, labels], got shape {counts.shape}")
    n_groups = counts.shape[0]
    weight = np.ones(n_groups, np.int64) if sizes is None else np.asarray(sizes, np.int64)
    ratio = np.asarray(ratios, dtype=np.float64)
    if weight.shape != (n_groups,):
        raise ValueError(f"sizes must have shape ({n_groups},), got {weight.shape}")
    if (counts < 0).any() or (weight < 0).any():
        raise ValueError("labels and sizes must be non-negative")
    if ratio.ndim != 1 or ratio.size == 0 or (ratio < 0).any() or ratio.sum() <= 0:
        raise ValueError(f"ratios must be non-negative with a positive sum, got {ratios}")
    ratio = ratio / ratio.sum()
    open_subsets = np.flatnonzero(ratio > 0)

    wanted = weight.sum() * ratio  # c_j: records each subset still wants
    wanted_label = np.outer(ratio, counts.sum(axis=0)).astype(np.float64)  # c_j^l
    remaining = counts.sum(axis=0)  # positives of each label among unassigned groups
    subset = np.full(n_groups, -1, dtype=np.intp)

    # Visiting order: larger groups first, equal sizes in random order.
    order = np.lexsort((rng.permutation(n_groups), -weight))
    rank = np.empty(n_groups, dtype=np.intp)
    rank[order] = np.arange(n_groups)

    def place(group: int, primary: npt.NDArray[np.float64]) -> None:
        best = _ties(primary[open_subsets], open_subsets)
        if best.size > 1:
            best = _ties(wanted[best], best)
        chosen = int(best[0] if best.size == 1 else rng.choice(best))
        subset[group] = chosen
        wanted[chosen] -= weight[group]
        wanted_label[chosen] -= counts[group]
        remaining[:] -= counts[group]

    while (remaining > 0).any():
        fewest = remaining[remaining > 0].min()
        rarest = np.flatnonzero(remaining == fewest)
        label = int(rarest[0] if rarest.size == 1 else rng.choice(rarest))
        carriers = np.flatnonzero((counts[:, label] > 0) & (subset < 0))
        for group in carriers[np.argsort(rank[carriers])]:
            place(int(group), wanted_label[:, label])

    unlabelled = np.flatnonzero(subset < 0)  # groups with no positive label at all
    for group in unlabelled[np.argsort(rank[unlabelled])]:
        place(int(group), wanted)
    return subset


def _ties(
    values: npt.NDArray[np.float64], candidates: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """The candidates whose value is (within rounding) the largest."""
    return candidates[values >= values.max() - _TIE]


def stratified_group_split(
    labels: npt.ArrayLike,
    group_of_row: npt.NDArray[np.intp],
    ratios: Sequence[float],
    rng: np.random.Generator,
) -> npt.NDArray[np.intp]:
    """Split rows into ``len(ratios)`` subsets, whole groups at a time, stratified on labels.

    ``labels`` is ``[n_rows, n_labels]`` multi-hot, ``group_of_row`` the group index of each row
    (see :func:`group_rows`). Returns the subset index of every row.
    """
    group_of_row = np.asarray(group_of_row, dtype=np.intp)
    n_groups = int(group_of_row.max()) + 1 if group_of_row.size else 0
    counts, sizes = group_label_counts(labels, group_of_row, n_groups)
    return iterative_stratification(counts, ratios, rng, sizes)[group_of_row]
