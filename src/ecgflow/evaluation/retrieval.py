"""ECG ↔ text retrieval metrics over L2-normalised embeddings.

Many records share a text (e.g. "Normal ECG. Sinus rhythm."), so retrieval is scored against
the *distinct* texts: an ECG is matched when its own text is among the top k texts, and a text
is matched when one of its ECGs is among the top k ECGs.
"""

from __future__ import annotations

import numpy as np


def retrieval_metrics(
    ecg: np.ndarray, text: np.ndarray, text_of_ecg: np.ndarray, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Top-k recall both ways and their mean.

    ``ecg [N, E]``: ECG embeddings; ``text [U, E]``: embeddings of the U distinct texts;
    ``text_of_ecg [N]``: index into ``text`` of each ECG's own text. Returns
    ``ecg_to_text_top{k}``, ``text_to_ecg_top{k}`` and ``mean_recall`` (mean of all of them),
    plus ``chance_mean_recall``: its expected value for embeddings that carry no information.
    """
    similarity = ecg @ text.T  # [N, U]
    n_texts = text.shape[0]
    out: dict[str, float] = {}
    # ECG → text: rank of the right text among all distinct texts
    own = similarity[np.arange(len(ecg)), text_of_ecg]
    ecg_rank = (similarity > own[:, None]).sum(axis=1)
    # text → ECG: best rank among the ECGs that carry the text
    order = np.argsort(-similarity.T, axis=1, kind="stable")  # [U, N]
    hits = text_of_ecg[order] == np.arange(n_texts)[:, None]
    text_rank = np.where(hits.any(axis=1), hits.argmax(axis=1), len(ecg))
    present = np.isin(np.arange(n_texts), text_of_ecg)
    carriers = np.bincount(text_of_ecg, minlength=n_texts)[present]
    chance = []
    for k in ks:
        out[f"ecg_to_text_top{k}"] = float((ecg_rank < k).mean())
        out[f"text_to_ecg_top{k}"] = float((text_rank[present] < k).mean())
        chance += [min(k, n_texts) / n_texts, float(_chance_any(len(ecg), carriers, k).mean())]
    out["mean_recall"] = float(np.mean(list(out.values())))
    out["chance_mean_recall"] = float(np.mean(chance))
    return out


def _chance_any(n: int, m: np.ndarray, k: int) -> np.ndarray:
    """P(at least one of ``m`` marked items among the first ``k`` of ``n`` in random order)."""
    k = min(k, n)
    none = np.ones(len(m))
    for i in range(k):  # hypergeometric: first k draws all unmarked
        none *= np.clip((n - m - i) / (n - i), 0.0, 1.0)
    return 1.0 - none
