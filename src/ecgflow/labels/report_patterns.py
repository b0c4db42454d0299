"""A rule-based labeler for free-text ECG reports, driven by a YAML/JSON config.

For each label the config lists regex ``patterns`` (case-insensitive; each is word-bounded
where it starts/ends with a word character), optional ``exclude`` patterns (a mention inside
an exclude match does not count, e.g. "incomplete right bundle branch block" for RBBB) and
``implies`` (labels a mention also sets, transitively: "1st degree AV block" → "AV block").

Every mention is classified by the cue phrases around it, within its clause (clauses end at
``scope.clause_breaks``: punctuation, line breaks, "but", "with", ...):

* **negated** if a ``negation.before`` cue lies within ``scope.words_before`` words before
  it, or a ``negation.after`` cue within ``scope.words_after`` words after it;
* otherwise **uncertain** if an ``uncertainty`` cue does the same;
* otherwise **positive**.

A cue that lies inside an uncertainty cue's match does not negate ("cannot be excluded",
"not ruled out" hedge). Per report and label the strongest status wins (positive > uncertain >
negated), propagated to implied labels. A label is 1 when positive; an uncertain one counts as
set by the config's ``uncertain``: ``positive`` → 1; ``negative`` → 0; ``ignore`` → 0 and
the cell is listed as undecided (``uncertain.parquet`` in the label stage) so a loss can mask
it, like CheXpert's U-Ignore.

The default config (``configs/ecg_fm_17.yaml``) has the 17 labels of ECG-FM's MIMIC-IV-ECG
labeler, for English machine statements.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecgflow.errors import EcgflowError
from ecgflow.labels import Labeling, LabelSpec, describe_records

DEFAULT_CONFIG = "ecg_fm_17.yaml"
Status = Literal["negated", "uncertain", "positive"]
_RANK = {"negated": 1, "uncertain": 2, "positive": 3}
_CUE_KEYS = ("negation.before", "negation.after", "uncertainty.before", "uncertainty.after")
_DEFAULT_BREAKS = [r"[.;:!\n]", ",", r" [-–] ", "but", "however", "although", "though", "with"]


class Cues(BaseModel):
    """Cue phrases (regexes) that may stand before or after a mention."""

    model_config = ConfigDict(extra="forbid")

    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class Scope(BaseModel):
    """How far a cue reaches: within the clause and this many words of the mention."""

    model_config = ConfigDict(extra="forbid")

    words_before: int = Field(5, ge=0, le=100)
    words_after: int = Field(3, ge=0, le=100)
    clause_breaks: list[str] = Field(default_factory=lambda: list(_DEFAULT_BREAKS))


class LabelRule(BaseModel):
    """One label: name, meaning, the phrases that mention it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    patterns: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    implies: list[str] = Field(default_factory=list)


class PatternConfig(BaseModel):
    """A report-pattern label set (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    uncertain: Literal["positive", "negative", "ignore"] = "negative"
    negation: Cues = Field(default_factory=Cues)
    uncertainty: Cues = Field(default_factory=Cues)
    scope: Scope = Field(default_factory=Scope)
    labels: list[LabelRule] = Field(min_length=1)


@dataclass(frozen=True)
class Mention:
    """A label mention found in a (normalised) report."""

    label: str
    start: int
    end: int
    text: str
    status: Status


# --- loading ---------------------------------------------------------------------------------


def load_config(path: Path | None = None) -> tuple[PatternConfig, str, str]:
    """The config at ``path`` (default: the packaged one): ``(config, file name, sha256)``."""
    if path is None:
        data = resources.files("ecgflow.labels").joinpath("configs", DEFAULT_CONFIG).read_bytes()
        where = DEFAULT_CONFIG
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EcgflowError(
                f"{path}: cannot read label config ({exc.strerror or exc})"
            ) from None
        where = str(path)
    config = parse_config(data, where)
    return config, Path(where).name, hashlib.sha256(data).hexdigest()


def parse_config(data: bytes | str, where: str = "<config>") -> PatternConfig:
    """Parse and validate config text (YAML, or JSON for ``*.json``); errors name the field."""
    try:
        raw = json.loads(data) if where.endswith(".json") else yaml.safe_load(data)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EcgflowError(
            f"{where}: not valid {'JSON' if where.endswith('.json') else 'YAML'}: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise EcgflowError(f"{where}: expected a mapping with 'name' and 'labels' at the top")
    try:
        config = PatternConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {_field_path(err['loc'], raw)}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise EcgflowError(f"{where}: {problems}") from None
    ReportLabeler(config, where)  # compiles every regex and checks names / implies
    return config


def _field_path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """``("labels", 3, "patterns")`` → ``labels[3] (AF).patterns``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    if len(loc) > 1 and loc[0] == "labels" and isinstance(loc[1], int):
        try:
            name = raw["labels"][loc[1]]["name"]
            text = text.replace(f"labels[{loc[1]}]", f"labels[{loc[1]}] ({name})", 1)
        except (KeyError, IndexError, TypeError):
            pass
    return text


# --- matching --------------------------------------------------------------------------------


def _bounded(pattern: str) -> str:
    """Word-bound a regex at each end that is a word character (so ``?`` still matches)."""
    return rf"(?:(?<!\w)|(?!\w))(?:{pattern})(?:(?!\w)|(?<!\w))"


def _compile(patterns: list[str], where: str, field: str) -> re.Pattern[str] | None:
    for index, pattern in enumerate(patterns):
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise EcgflowError(
                f"{where}: field {field}[{index}]: bad regex {pattern!r} ({exc})"
            ) from None
        if compiled.fullmatch("") is not None:
            raise EcgflowError(f"{where}: field {field}[{index}]: {pattern!r} matches empty text")
    if not patterns:
        return None
    return re.compile("|".join(_bounded(p) for p in patterns), re.IGNORECASE)


def normalise(text: str) -> str:
    """Collapse runs of spaces/tabs; keep line breaks (they end clauses)."""
    text = re.sub(r"[^\S\n]+", " ", text.replace("\r", "\n"))
    return re.sub(r" ?\n[\s]*", "\n", text).strip()


class ReportLabeler:
    """Compiled form of a :class:`PatternConfig`; labels one report at a time."""

    def __init__(self, config: PatternConfig, where: str = "<config>") -> None:
        self.config = config
        self.names = [rule.name for rule in config.labels]
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise EcgflowError(f"{where}: field labels: duplicate label name(s) {duplicates}")
        self._rules = []
        for index, rule in enumerate(config.labels):
            field = f"labels[{index}] ({rule.name})"
            for target in rule.implies:
                if target not in self.names:
                    raise EcgflowError(
                        f"{where}: field {field}.implies: unknown label {target!r} "
                        f"(labels: {', '.join(self.names)})"
                    )
            pattern = _compile(rule.patterns, where, f"{field}.patterns")
            exclude = _compile(rule.exclude, where, f"{field}.exclude")
            self._rules.append((rule.name, pattern, exclude))
        cues = dict(zip(_CUE_KEYS, _cue_lists(config), strict=True))
        cues["scope.clause_breaks"] = config.scope.clause_breaks
        self._cues = {key: _compile(value, where, key) for key, value in cues.items()}
        self._implied = _closure({rule.name: rule.implies for rule in config.labels})

    def mentions(self, text: str | None) -> list[Mention]:
        """Every label mention in ``text`` with its status."""
        text = normalise(text or "")
        if not text:
            return []
        spans = self._clause_breaks(text)
        starts, ends = [s for s, _ in spans], [e for _, e in spans]
        found = []
        for name, pattern, exclude in self._rules:
            excluded = [m.span() for m in exclude.finditer(text)] if exclude else []
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(s < end and start < e for s, e in excluded):
                    continue
                before = bisect.bisect_right(ends, start)
                clause_start = ends[before - 1] if before else 0
                after = bisect.bisect_left(starts, end)
                clause_end = starts[after] if after < len(starts) else len(text)
                status = self._status(text[clause_start:start], text[end:clause_end])
                found.append(Mention(name, start, end, match.group(0), status))
        return found

    def _clause_breaks(self, text: str) -> list[tuple[int, int]]:
        """Clause-break spans in ``text``, except those inside a cue ("consistent with")."""
        spans = self._spans("scope.clause_breaks", text)
        cues = [span for key in _CUE_KEYS for span in self._spans(key, text)]
        return [(s, e) for s, e in spans if not any(cs <= s and e <= ce for cs, ce in cues)]

    def statuses(self, text: str | None) -> dict[str, Status]:
        """The strongest status per mentioned label, propagated to implied labels."""
        best: dict[str, Status] = {}
        for mention in self.mentions(text):
            for name in (mention.label, *self._implied[mention.label]):
                if _RANK[mention.status] > _RANK.get(best.get(name, ""), 0):
                    best[name] = mention.status
        return best

    @property
    def counted(self) -> tuple[Status, ...]:
        """The statuses that set a label to 1 under the config's ``uncertain`` policy."""
        return ("positive", "uncertain") if self.config.uncertain == "positive" else ("positive",)

    def label(self, text: str | None) -> set[str]:
        """The labels set to 1 for one report under the config's ``uncertain`` policy."""
        return {name for name, status in self.statuses(text).items() if status in self.counted}

    def label_texts(self, texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 label matrix, and a boolean matrix of uncertain cells, for many reports."""
        column = {name: index for index, name in enumerate(self.names)}
        counted = self.counted
        matrix = np.zeros((len(texts), len(self.names)), dtype=np.uint8)
        uncertain = np.zeros((len(texts), len(self.names)), dtype=bool)
        for row, text in enumerate(texts):
            for name, status in self.statuses(text).items():
                matrix[row, column[name]] = status in counted
                uncertain[row, column[name]] = status == "uncertain"
        return matrix, uncertain

    def _status(self, before: str, after: str) -> Status:
        scope = self.config.scope
        before = _last_words(before, scope.words_before)
        after = _first_words(after, scope.words_after)
        hedges = self._spans("uncertainty.before", before)
        negations = self._spans("negation.before", before)
        after_hedges = self._spans("uncertainty.after", after)
        after_negations = self._spans("negation.after", after)
        if _outside(negations, hedges) or _outside(after_negations, after_hedges):
            return "negated"
        if hedges or after_hedges:
            return "uncertain"
        return "positive"

    def _spans(self, key: str, text: str) -> list[tuple[int, int]]:
        pattern = self._cues[key]
        return [m.span() for m in pattern.finditer(text)] if pattern and text else []


def _cue_lists(config: PatternConfig) -> tuple[list[str], ...]:
    """The cue lists in :data:`_CUE_KEYS` order."""
    negation, uncertainty = config.negation, config.uncertainty
    return negation.before, negation.after, uncertainty.before, uncertainty.after


def _last_words(text: str, n: int) -> str:
    words = list(re.finditer(r"\S+", text))
    if n == 0 or not words:
        return ""
    return text[words[-n].start() :] if len(words) > n else text


def _first_words(text: str, n: int) -> str:
    words = list(re.finditer(r"\S+", text))
    if n == 0 or not words:
        return ""
    return text[: words[n - 1].end()] if len(words) > n else text


def _outside(spans: list[tuple[int, int]], covers: list[tuple[int, int]]) -> bool:
    """Whether any span does not overlap one of ``covers``."""
    return any(not any(s < ce and cs < e for cs, ce in covers) for s, e in spans)


def _closure(implies: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every label reachable through ``implies`` (cycles allowed), in config order."""
    order = list(implies)
    result = {}
    for name in order:
        seen: set[str] = set()
        stack = list(implies[name])
        while stack:
            target = stack.pop()
            if target not in seen and target != name:
                seen.add(target)
                stack.extend(implies[target])
        result[name] = [n for n in order if n in seen]
    return result


# --- the label set ---------------------------------------------------------------------------


def report_labels(records: pd.DataFrame, config_path: Path | None = None) -> Labeling:
    """Label ``records`` by their ``report`` text with the config at ``config_path``."""
    reports = records["report"].reset_index(drop=True)
    if len(reports) and reports.isna().all():
        raise EcgflowError(
            f"label set report-patterns needs report text; records.parquet "
            f"({describe_records(records)}) has no reports"
        )
    config, file_name, digest = load_config(config_path)
    labeler = ReportLabeler(config, file_name)
    matrix, uncertain = labeler.label_texts(reports.tolist())
    specs = [LabelSpec(rule.name, rule.description) for rule in config.labels]
    info = {
        "config": config.name,
        "config_file": file_name,
        "uncertain": config.uncertain,
        "uncertain_records": dict(zip(labeler.names, map(int, uncertain.sum(0)), strict=True)),
        "records_without_report": int(reports.isna().sum()),
    }
    return Labeling(
        labels=specs,
        matrix=matrix,
        inputs={file_name: digest},
        info=info,
        uncertain=uncertain if config.uncertain == "ignore" else None,
    )
