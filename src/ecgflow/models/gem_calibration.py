"""Calibrated closed-set decisions for GEM: per-group log-prior offsets on the candidates' scores.

GEM scores each candidate answer by its summed log-probability. Training draws yes and no
equally often, while the questions' answers are not balanced, so the raw argmax answers "yes"
far too often. A :class:`Calibration` adds a per-option offset to those scores (for yes/no it
is a bias on log p(yes) − log p(no)) before the argmax.

Groups are ``(source, template, attribute)``: ``source`` is ``"ecgqa"`` for imported ECG-QA
questions and ``"generated"`` for build-instructions' own (they keep separate priors even where
template ids coincide); ``template`` is the ECG-QA template id, else the question's kind.
Offsets are fitted on validation questions by maximum likelihood of the softmax over each
question's candidates, hierarchically: per source (shrunk toward 0), per (source, template)
(shrunk toward its source's), per (source, template, attribute) (shrunk toward its
template's); a group with fewer than ``min_questions`` questions is not fitted and uses the
coarser group's offsets. The L2 shrinkage (``strength``) keeps an option never seen as a true
answer (ECG-QA's "not sure") at a finite, strongly negative offset.

A question without metadata (a served request) finds its group by its *skeleton*: the text in
lower case with the lead it names replaced by ``{lead}`` (:func:`question_skeleton`), mapped to
the group most questions with that skeleton had when the calibration was fitted.

Saved beside the GEM adapter as ``calibration.json`` (plain numbers, no pickle).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecgflow.errors import EcgflowError
from ecgflow.text.evidence import LEAD_NAMED, named_lead

CALIBRATION = "calibration.json"
ECGQA = "ecgqa"
GENERATED = "generated"
_PLACEHOLDERS = re.compile(r"<ecg>|<image>")
_SPACES = re.compile(r"\s+")

Group = tuple[str, str, str]


def question_group(kind: str, template_id: Any, attribute: Any) -> Group:
    """``(source, template, attribute)`` of a question (see the module docstring)."""
    source = ECGQA if kind == ECGQA else GENERATED
    template = str(kind if template_id is None else template_id)
    return source, template, "" if attribute is None else str(attribute)


def question_skeleton(text: str) -> str:
    """``text`` in lower case, placeholders removed, single spaces, the named lead → ``{lead}``."""
    lowered = _SPACES.sub(" ", _PLACEHOLDERS.sub(" ", text.lower())).strip()
    return LEAD_NAMED.sub("lead {lead}", lowered)


def asked_lead(text: str, leads: Sequence[str]) -> int | None:
    """Index in ``leads`` of the lead the question names (``"lead V1"``), or None."""
    name = named_lead(text)
    lowered = [lead.lower() for lead in leads]
    return None if name is None or name.lower() not in lowered else lowered.index(name.lower())


def group_key(group: Sequence[str]) -> str:
    """The JSON key of a group or a coarser prefix of it (``"ecgqa|26|static noise"``)."""
    return "|".join(group)


def _levels(group: Group) -> list[str]:
    """The keys of ``group`` from the most specific to the coarsest."""
    return [group_key(group[:n]) for n in (3, 2, 1)]


def softmax(scores: Sequence[float]) -> np.ndarray:
    """The softmax of ``scores`` (``-inf`` allowed)."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.exp(s - s.max())
    return s / s.sum()


def decide(
    options: Sequence[str], scores: Sequence[float], offsets: dict[str, float] | None = None
) -> tuple[str, np.ndarray]:
    """The chosen option and the probabilities of all options after adding ``offsets``.

    The one place closed-set answers are decided (eval-gem, serving, training's selection).
    """
    offsets = offsets or {}
    adjusted = [s + offsets.get(o, 0.0) for o, s in zip(options, scores, strict=True)]
    probabilities = softmax(adjusted)
    return options[int(np.argmax(adjusted))], probabilities


def yes_probability(options: Sequence[str], probabilities: np.ndarray) -> float:
    """p(yes) among yes and no (other options left out), or NaN without both."""
    lowered = [o.strip().lower() for o in options]
    if "yes" not in lowered or "no" not in lowered:
        return math.nan
    yes, no = probabilities[lowered.index("yes")], probabilities[lowered.index("no")]
    return float(yes / (yes + no)) if yes + no > 0 else 0.5


@dataclass(frozen=True)
class FitItem:
    """One validation question: its group, candidates, their raw scores and the true answer."""

    group: Group
    options: tuple[str, ...]
    scores: tuple[float, ...]
    truth: str
    question: str = ""


@dataclass
class Calibration:
    """Per-group option offsets (see the module docstring)."""

    offsets: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)
    min_questions: int = 10
    strength: float = 1.0

    def offsets_for(self, group: Group) -> dict[str, float]:
        """The most specific fitted offsets for ``group`` (empty: none fitted)."""
        for key in _levels(group):
            if key in self.offsets:
                return self.offsets[key]
        return {}

    def offsets_for_question(self, text: str) -> dict[str, float]:
        """Offsets for a question without metadata, found by its skeleton (empty: unknown)."""
        key = self.questions.get(question_skeleton(text))
        if key is None:
            return {}
        parts = key.split("|")
        return self.offsets_for((parts[0], parts[1], parts[2])) if len(parts) == 3 else {}

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``calibration.json``."""
        return {
            "kind": "gem-calibration",
            "method": "per-option log-prior offsets, max. likelihood, L2 toward the coarser group",
            "min_questions": self.min_questions,
            "strength": self.strength,
            "offsets": {k: dict(sorted(v.items())) for k, v in sorted(self.offsets.items())},
            "counts": dict(sorted(self.counts.items())),
            "questions": dict(sorted(self.questions.items())),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = CALIBRATION) -> Calibration:
        """The inverse of :meth:`to_json`; a malformed document raises EcgflowError."""
        try:
            if data.get("kind") != "gem-calibration":
                raise ValueError("kind is not 'gem-calibration'")
            offsets = {
                str(k): {str(o): float(v) for o, v in opts.items()}
                for k, opts in data["offsets"].items()
            }
            return cls(
                offsets=offsets,
                counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
                questions={str(k): str(v) for k, v in data.get("questions", {}).items()},
                min_questions=int(data.get("min_questions", 10)),
                strength=float(data.get("strength", 1.0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise EcgflowError(f"{where}: not a GEM calibration ({exc})") from None

    def save(self, folder: Path) -> None:
        """Write ``folder/calibration.json``."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        (Path(folder) / CALIBRATION).write_text(text, encoding="utf-8")


def read_optional_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when there is no such file (a model trained before it)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None


def load_calibration(folder: Path) -> Calibration | None:
    """``folder/calibration.json``, or None when the model has none (trained before it existed)."""
    path = Path(folder) / CALIBRATION
    data = read_optional_json(path)
    return None if data is None else Calibration.from_json(data, str(path))


def fit_calibration(
    items: Iterable[FitItem],
    min_questions: int = 10,
    strength: float = 1.0,
    questions: Iterable[tuple[str, Group]] = (),
    keep_raw: Iterable[tuple[str, ...]] = (),
) -> Calibration:
    """Fit offsets on ``items`` (see the module docstring).

    ``questions``: further (text, group) pairs (e.g. the training questions) for the skeleton
    map that serving uses; the items' own questions are always included.
    ``keep_raw``: group prefixes (``("generated", "label")``) decided by the raw scores: their
    items are not fitted, and each gets empty offsets so it does not take a coarser group's.
    """
    raw = [tuple(prefix) for prefix in keep_raw]
    usable = [
        i
        for i in items
        if i.truth in i.options
        and len(i.options) > 1
        and not any(i.group[: len(prefix)] == prefix for prefix in raw)
    ]
    calibration = Calibration(min_questions=min_questions, strength=strength)
    for prefix in raw:
        calibration.offsets[group_key(prefix)] = {}
    for level in (1, 2, 3):
        members: dict[str, list[FitItem]] = defaultdict(list)
        for item in usable:
            members[group_key(item.group[:level])].append(item)
        for key, group_items in sorted(members.items()):
            if len(group_items) < min_questions:
                continue
            parent = (
                calibration.offsets.get(group_key(group_items[0].group[: level - 1]), {})
                if level > 1
                else {}
            )
            calibration.offsets[key] = _fit_offsets(group_items, parent, strength)
            calibration.counts[key] = len(group_items)
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    pairs = [(i.question, i.group) for i in usable if i.question] + list(questions)
    for text, group in pairs:
        seen[question_skeleton(text)][group_key(group)] += 1
    calibration.questions = {
        skeleton: min(c, key=lambda k: (-c[k], k)) for skeleton, c in seen.items()
    }
    return calibration


def _fit_offsets(
    items: list[FitItem], parent: dict[str, float], strength: float
) -> dict[str, float]:
    """Offsets maximising the items' softmax likelihood, L2-shrunk toward ``parent``."""
    from scipy.optimize import minimize

    names = sorted({o for i in items for o in i.options})
    index = {name: k for k, name in enumerate(names)}
    centre = np.array([parent.get(name, 0.0) for name in names])
    rows = [
        (np.array([index[o] for o in i.options]), np.array(i.scores, dtype=np.float64))
        for i in items
    ]
    truths = [i.options.index(i.truth) for i in items]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta - centre
        loss = 0.5 * strength * float(diff @ diff)
        grad = strength * diff
        for (idx, scores), t in zip(rows, truths, strict=True):
            z = scores + theta[idx]
            z = z - z.max()
            p = np.exp(z)
            total = p.sum()
            loss -= float(z[t] - math.log(total))
            p /= total
            p[t] -= 1.0
            np.add.at(grad, idx, p)
        return loss, grad

    result = minimize(objective, centre.copy(), jac=True, method="L-BFGS-B")
    return {name: round(float(v), 6) for name, v in zip(names, result.x, strict=True)}
