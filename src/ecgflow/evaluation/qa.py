"""Scoring question answering (GEM, ECG-QA): exact match after normalisation, and a prior baseline.

- :func:`normalise_answer`: lower case, no surrounding punctuation, single spaces; a list
  answer ("lead I, lead II") compares as its sorted items.
- :func:`qa_metrics`: accuracy, balanced accuracy (the mean recall over the true answers, so
  always answering the common answer scores 1 / number of answers) and accuracy per template.
- :class:`AnswerPrior`: the label-prior baseline: the majority answer per (template, attribute)
  of the training questions, falling back to the template's, then the overall majority.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sklearn.metrics import balanced_accuracy_score

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
        "qa_balanced_accuracy": float(balanced_accuracy_score(t, p)),
        "qa_accuracy_by_template": {
            k: sum(v) / len(v) for k, v in sorted(by_template.items(), key=lambda kv: kv[0])
        },
        "n_questions": len(hits),
    }


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
