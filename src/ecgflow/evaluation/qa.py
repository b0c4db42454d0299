"""Scoring question answering (GEM, ECG-QA): exact match after normalisation, and a prior baseline.

- :func:`normalise_answer`: lower case, no surrounding punctuation, single spaces; a list
  answer ("lead I, lead II") compares as its sorted items.
- :func:`qa_metrics`: accuracy, balanced accuracy (the mean recall over the true answers, so
  always answering the common answer scores 1 / number of answers) and accuracy per template.
- :func:`qa_report`: the same per question source (ECG-QA vs generated, never pooled), with
  balanced accuracy over the true answers only ("not sure", never true, is just wrong), AUROC
  of p(yes) on yes/no questions and n, per template and per (template, attribute) family
  within each source.
- :class:`AnswerPrior`: the label-prior baseline: the majority answer per (template, attribute)
  of the training questions, falling back to the template's, then the overall majority.
  finetune-gem keys it by source-qualified templates (``"ecgqa:26"``, ``"generated:26"``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

_PUNCTUATION = re.compile(r"^[\s.,;:!?\"']+|[\s.,;:!?\"']+$")
_SPACES = re.compile(r"\s+")


def normalise_answer(text: str) -> str:
    """The comparable form of an answer (see the module docstring)."""
    items = [_SPACES.sub(" ", _PUNCTUATION.sub("", part.lower())) for part in text.split(",")]
    return ", ".join(sorted(item for item in items if item))


def qa_metrics(
    truth: Sequence[str], predicted: Sequence[str], templates: Sequence[Any]
) -> dict[str, Any]:
    """``qa_accuracy``, ``qa_balanced_accuracy``, ``qa_accuracy_by_template``, ``n_questions``."""
    if len(truth) != len(predicted) or len(truth) != len(templates):
        raise ValueError("truth, predicted and templates must have the same length")
    if not truth:
        return {"qa_accuracy": float("nan"), "qa_balanced_accuracy": float("nan"), "n_questions": 0}
    t = [normalise_answer(a) for a in truth]
    p = [normalise_answer(a) for a in predicted]
    hits = [a == b for a, b in zip(t, p, strict=True)]
    by_template: dict[str, list[bool]] = defaultdict(list)
    for template, hit in zip(templates, hits, strict=True):
        by_template[str(template)].append(hit)
    return {
        "qa_accuracy": sum(hits) / len(hits),
        "qa_balanced_accuracy": scores(t, p)["balanced_accuracy"],
        "qa_accuracy_by_template": {
            k: sum(v) / len(v) for k, v in sorted(by_template.items(), key=lambda kv: kv[0])
        },
        "n_questions": len(hits),
    }


def scores(
    truth: Sequence[str], predicted: Sequence[str], p_yes: Sequence[float] | None = None
) -> dict[str, Any]:
    """``accuracy``, ``balanced_accuracy`` (mean recall over the true answers), ``auroc``, ``n``.

    ``auroc``: of ``p_yes`` on the questions whose truth is yes or no and whose p(yes) is
    known; None with fewer than one of each (or no ``p_yes``).
    """
    t = [normalise_answer(a) for a in truth]
    p = [normalise_answer(a) for a in predicted]
    n = len(t)
    if not n:
        return {"accuracy": None, "balanced_accuracy": None, "auroc": None, "n": 0}
    recalls = []
    for answer in sorted(set(t)):
        rows = [i for i, a in enumerate(t) if a == answer]
        recalls.append(sum(p[i] == answer for i in rows) / len(rows))
    auroc = None
    if p_yes is not None:
        keep = [i for i, a in enumerate(t) if a in ("yes", "no") and np.isfinite(p_yes[i])]
        y = [t[i] == "yes" for i in keep]
        if 0 < sum(y) < len(y):
            auroc = float(roc_auc_score(y, [p_yes[i] for i in keep]))
    return {
        "accuracy": sum(a == b for a, b in zip(t, p, strict=True)) / n,
        "balanced_accuracy": float(np.mean(recalls)),
        "auroc": auroc,
        "n": n,
    }


def qa_report(
    truth: Sequence[str],
    predicted: Sequence[str],
    groups: Sequence[tuple[str, str, str]],
    p_yes: Sequence[float] | None = None,
) -> dict[str, Any]:
    """:func:`scores` overall and per source, with per-template and per-family scores.

    ``groups``: (source, template, attribute) per question; templates and attributes are only
    compared within their source.
    """
    if not (len(truth) == len(predicted) == len(groups)):
        raise ValueError("truth, predicted and groups must have the same length")
    if p_yes is not None and len(p_yes) != len(truth):
        raise ValueError("p_yes must have one value per question")

    def subset(rows: list[int]) -> dict[str, Any]:
        return scores(
            [truth[i] for i in rows],
            [predicted[i] for i in rows],
            None if p_yes is None else [p_yes[i] for i in rows],
        )

    report: dict[str, Any] = {"overall": subset(list(range(len(truth)))), "by_source": {}}
    for source in sorted({g[0] for g in groups}):
        rows = [i for i, g in enumerate(groups) if g[0] == source]
        entry = subset(rows)
        templates = sorted({groups[i][1] for i in rows})
        entry["by_template"] = {
            k: subset([i for i in rows if groups[i][1] == k]) for k in templates
        }
        families = sorted({f"{groups[i][1]}|{groups[i][2]}" for i in rows})
        entry["by_family"] = {
            k: subset([i for i in rows if f"{groups[i][1]}|{groups[i][2]}" == k]) for k in families
        }
        report["by_source"][source] = entry
    return report


class AnswerPrior:
    """Majority answer per (template, attribute), per template, overall (training questions)."""

    def __init__(self, questions: Iterable[tuple[Any, Any, str]]) -> None:
        """``questions``: (template_id, attribute, answer) of the training questions."""
        self.by_key: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_template: dict[str, Counter[str]] = defaultdict(Counter)
        self.overall: Counter[str] = Counter()
        for template, attribute, answer in questions:
            answer = normalise_answer(answer)
            self.by_key[_key(template, attribute)][answer] += 1
            self.by_template[str(template)][answer] += 1
            self.overall[answer] += 1

    def predict(self, template: Any, attribute: Any) -> str:
        """The majority answer for a question of this template and attribute."""
        for counts in (
            self.by_key.get(_key(template, attribute)),
            self.by_template.get(str(template)),
        ):
            if counts:
                return _majority(counts)
        return _majority(self.overall) if self.overall else ""

    def to_json(self) -> dict[str, Any]:
        """The fitted counts (so the baseline can be re-read without the training questions)."""
        return {
            "by_key": {k: dict(v) for k, v in sorted(self.by_key.items())},
            "by_template": {k: dict(v) for k, v in sorted(self.by_template.items())},
            "overall": dict(self.overall),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerPrior:
        """The inverse of :meth:`to_json`."""
        prior = cls([])
        prior.by_key.update({k: Counter(v) for k, v in data["by_key"].items()})
        prior.by_template.update({k: Counter(v) for k, v in data["by_template"].items()})
        prior.overall.update(data["overall"])
        return prior


def _key(template: Any, attribute: Any) -> str:
    return f"{template}|{attribute}"


def _majority(counts: Counter[str]) -> str:
    """The most common answer; ties go to the alphabetically first (deterministic)."""
    best = max(counts.values())
    return min(answer for answer, n in counts.items() if n == best)
