r"""Grounded question/answer pairs per ECG record, as LLaVA-style conversations (finetune-GEM).

Each instruction is ``{id, record_id, ecg, image, conversations, meta}`` like the GEM seed's
``mixed_train.json``: ``ecg`` is the record's WFDB path relative to the ingest folder, the
human turn reads ``"<ecg>\n" + question`` and the ``gpt`` turn holds the answer. ``meta``
carries what scoring needs (kind, ECG-QA-style template id, attribute, the closed-set
``candidates``) and is never shown to the model.

Where the answers come from:

* **noise** (PTB-XL ``static_noise``, ``burst_noise``, ``baseline_drift``,
  ``electrodes_problems``): the annotations name leads (``"I-AVR"``, ``"alles"``, ``"V2,3"``),
  parsed by :func:`parse_leads`; the questions follow ECG-QA's noise templates 26 (a noise in a
  lead), 27 (a noise anywhere) and 28 (any noise in a lead), which were built from exactly
  these columns;
* **features** measured on the signal (:mod:`ecgflow.signal.rhythm`): heart rate, above 100 /
  below 60 bpm, rhythm regularity, QRS axis category;
* **labels**: one verify question per label of the label set (``label_def.json``);
* **report**: "Describe this ECG" answered by the record's English statement text
  (:func:`ecgflow.text.record_texts`);
* **ECG-QA**: imported questions (``question``, ``answer``, ``ecg_id``, ``template_id``, …)
  matched to records by ``ecg_id``.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgflow.errors import EcgflowError

if TYPE_CHECKING:  # scipy.signal (~0.5 s): imported by the questions that measure
    from ecgflow.signal.rhythm import Rhythm

#: PTB-XL's lead order; annotation ranges such as ``I-AVR`` run along it.
LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
#: PTB-XL noise column → the attribute's name in ECG-QA.
NOISE_COLUMNS: dict[str, str] = {
    "static_noise": "static noise",
    "burst_noise": "burst noise",
    "baseline_drift": "baseline drift",
    "electrodes_problems": "electrodes problems",
}
ANY_NOISE = "any kind of noises"
YES_NO: tuple[str, str] = ("yes", "no")
ECG_TOKEN = "<ecg>"
_ALL_WORDS = {"alles", "all"}
_UPPER = {lead.upper(): lead for lead in LEADS}
_TOKEN = re.compile(r"AV[RLF]|V\d+|III|II|I|\d+")


class LeadParseError(ValueError):
    """An annotation that names no lead this parser can place (e.g. ``"leicht"``)."""


def parse_leads(text: str | None) -> list[str]:
    """The leads a PTB-XL noise annotation names, in :data:`LEADS` order; ``[]`` when empty.

    Handles ranges along the lead order (``I-AVR``, ``AVF-V6``, ``v5-6``), ``alles`` (all
    leads), lists separated by commas or dots (``I,II,AVR,AVL.AVF``), runs without separators
    (``V1V6``) and chest leads continued by a bare number (``V2,3``, ``V1,2``). Raises
    :class:`LeadParseError` for a non-empty annotation that names no lead, or a bare number
    with no chest lead before it.
    """
    cleaned = (text or "").strip().strip(",").strip()
    if not cleaned:
        return []
    if any(word in _ALL_WORDS for word in re.split(r"[\s,.;]+", cleaned.lower())):
        return list(LEADS)
    chosen: set[int] = set()
    chest = False  # a bare number continues the chest leads written before it
    for part in re.split(r"[,.;\s]+", cleaned.upper()):
        if part:
            indices = _parse_part(part, text or "", chest)
            chosen.update(indices)
            chest = max(indices) >= LEADS.index("V1")
    if not chosen:
        raise LeadParseError(f"no lead named in {text!r}")
    return [LEADS[i] for i in sorted(chosen)]


def _parse_part(part: str, original: str, chest: bool) -> set[int]:
    """One comma-free piece: single leads, runs, or one ``A-B`` range."""
    ends = part.split("-")
    if len(ends) == 2 and ends[0] and ends[1]:
        first = _lead_indices(ends[0], original, chest)
        last = _lead_indices(ends[1], original, chest=first[-1] >= LEADS.index("V1"))
        return set(range(first[-1], last[0] + 1)) | set(first) | set(last)
    return set(_lead_indices(part.replace("-", ""), original, chest))


def _lead_indices(piece: str, original: str, chest: bool = False) -> list[int]:
    """Indices of the leads written in ``piece`` (``"V1V6"`` → V1, V6; ``"3"`` after V → V3)."""
    tokens = _TOKEN.findall(piece)
    if not tokens or "".join(tokens) != piece:
        raise LeadParseError(f"cannot read {piece!r} in {original!r}")
    indices = []
    for token in tokens:
        if token.isdigit():
            if not chest and not indices:
                raise LeadParseError(f"bare number {token!r} in {original!r} names no lead")
            token = f"V{token}"
        if token not in _UPPER:
            raise LeadParseError(f"unknown lead {token!r} in {original!r}")
        index = LEADS.index(_UPPER[token])
        indices.append(index)
        chest = chest or index >= LEADS.index("V1")
    return indices


# --- questions -------------------------------------------------------------------------------

_LEAD_NOISE_QUESTIONS = (  # ECG-QA template 26
    "Does lead {lead} show any {noise} on this ECG?",
    "Is there any {noise} in lead {lead} according to this ECG?",
    "Is {noise} present in lead {lead} based on the ECG?",
)
_RECORD_NOISE_QUESTIONS = (  # template 27
    "Is {noise} visible in this ECG?",
    "Is there any {noise} present on this ECG?",
)
_LEAD_ANY_QUESTIONS = (  # template 28
    "Does lead {lead} on this ECG have any noises?",
    "Is there any interference present in lead {lead} on this ECG?",
)
_LABEL_QUESTION = "Does this ECG show {description}?"
#: Measured-feature questions: (question, attribute); answers from ecgflow.signal.rhythm.
_RATE_QUESTION = ("What is the heart rate of this ECG?", "heart rate")
_FAST_QUESTION = ("Is the heart rate of this ECG above 100 beats per minute?", "tachycardia")
_SLOW_QUESTION = ("Is the heart rate of this ECG below 60 beats per minute?", "bradycardia")
_REGULAR_QUESTION = ("Is the rhythm of this ECG regular?", "rhythm regularity")
_AXIS_QUESTION = ("What is the heart axis of this ECG?", "heart axis")
AXES = ("normal", "left axis deviation", "right axis deviation", "extreme axis deviation")
#: RR intervals vary by less than this share of their mean in a regular rhythm.
REGULAR_RR_CV = 0.1
#: Tachycardia above, bradycardia below (bpm): the feature questions' and the evidence's.
TACHYCARDIA_BPM, BRADYCARDIA_BPM = 100.0, 60.0
_DESCRIBE_QUESTION = "Describe the findings of this ECG."


def conversation(
    instruction_id: str,
    record_id: str,
    ecg: str,
    question: str,
    answer: str,
    meta: dict[str, Any],
    image: str | None = None,
) -> dict[str, Any]:
    """One LLaVA-style instruction (see the module docstring)."""
    return {
        "id": instruction_id,
        "record_id": record_id,
        "ecg": ecg,
        "image": image,
        "conversations": [
            {"from": "human", "value": f"{ECG_TOKEN}\n{question}"},
            {"from": "gpt", "value": answer},
        ],
        "meta": meta,
    }


def noise_instructions(
    record_id: str,
    ecg: str,
    annotations: dict[str, str | None],
    rng: random.Random,
    per_record: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Noise questions for one record from its four annotation columns.

    Returns the instructions (at most ``per_record`` of the lead-level ones, drawn with
    ``rng``; all four record-level ones) and the problems met (an annotation that names no
    lead skips that attribute's questions and is reported, never guessed).
    """
    affected: dict[str, set[str]] = {}
    problems = []
    for column, attribute in NOISE_COLUMNS.items():
        try:
            affected[attribute] = set(parse_leads(annotations.get(column)))
        except LeadParseError as exc:
            problems.append(f"record {record_id}: {column}: {exc}")
    noisy_anywhere = set().union(*affected.values())
    lead_level: list[tuple[str, str, str, int]] = []  # (question, answer, attribute, template)
    for attribute, leads in affected.items():
        for lead in LEADS:
            template = rng.choice(_LEAD_NOISE_QUESTIONS)
            question = template.format(lead=lead, noise=attribute)
            lead_level.append((question, _yes_no(lead in leads), attribute, 26))
    if len(affected) == len(NOISE_COLUMNS):  # "any noise" needs every column readable
        for lead in LEADS:
            question = rng.choice(_LEAD_ANY_QUESTIONS).format(lead=lead)
            lead_level.append((question, _yes_no(lead in noisy_anywhere), ANY_NOISE, 28))
    rng.shuffle(lead_level)
    chosen = lead_level[:per_record]
    for attribute, leads in affected.items():
        question = rng.choice(_RECORD_NOISE_QUESTIONS).format(noise=attribute)
        chosen.append((question, _yes_no(bool(leads)), attribute, 27))
    out = [
        conversation(
            f"{record_id}-noise-{k}",
            record_id,
            ecg,
            question,
            answer,
            {
                "kind": "noise",
                "template_id": template,
                "attribute": attribute,
                "candidates": list(YES_NO),
            },
        )
        for k, (question, answer, attribute, template) in enumerate(chosen)
    ]
    return out, problems


def label_phrase(description: str) -> str:
    """A label's description as the label question says it.

    The first letter is lower-cased unless it starts an abbreviation ("ST/T change").
    """
    if description[1:2].isupper():
        return description
    return description[:1].lower() + description[1:]


def label_instructions(
    record_id: str, ecg: str, positives: Iterable[str], label_def: dict[str, Any]
) -> list[dict[str, Any]]:
    """One yes/no question per label of ``label_def`` (``positives``: the record's labels)."""
    present = set(positives)
    out = []
    for entry in label_def["labels"]:
        name = str(entry["name"])
        description = str(entry.get("description") or name.replace("_", " "))
        question = _LABEL_QUESTION.format(description=label_phrase(description))
        meta = {"kind": "label", "template_id": None, "attribute": name, "candidates": [*YES_NO]}
        out.append(
            conversation(
                f"{record_id}-label-{name}",
                record_id,
                ecg,
                question,
                _yes_no(name in present),
                meta,
            )
        )
    return out


def feature_instructions(record_id: str, ecg: str, rhythm: Rhythm) -> list[dict[str, Any]]:
    """Heart rate, tachy-/bradycardia, regularity and axis questions from measured features.

    Nothing is asked about a record whose beats could not be found (fewer than 3).
    """
    from ecgflow.signal.rhythm import axis_category

    if not math.isfinite(rhythm.heart_rate_bpm):
        return []
    rate = rhythm.heart_rate_bpm
    asked: list[tuple[tuple[str, str], str, list[str] | None]] = [
        (_RATE_QUESTION, f"{round(rate)} bpm", None),
        (_FAST_QUESTION, _yes_no(rate > TACHYCARDIA_BPM), list(YES_NO)),
        (_SLOW_QUESTION, _yes_no(rate < BRADYCARDIA_BPM), list(YES_NO)),
        (_REGULAR_QUESTION, _yes_no(rhythm.rr_cv < REGULAR_RR_CV), list(YES_NO)),
    ]
    axis = axis_category(rhythm.axis_deg)
    if axis is not None:
        asked.append((_AXIS_QUESTION, axis, list(AXES)))
    return [
        conversation(
            f"{record_id}-feature-{attribute.replace(' ', '-')}",
            record_id,
            ecg,
            question,
            answer,
            {
                "kind": "feature",
                "template_id": None,
                "attribute": attribute,
                "candidates": candidates,
            },
        )
        for (question, attribute), answer, candidates in asked
    ]


def report_instruction(record_id: str, ecg: str, text: str) -> dict[str, Any] | None:
    """The "describe this ECG" instruction answered by the record's English text, or None."""
    if not text.strip():
        return None
    meta = {"kind": "report", "template_id": None, "attribute": None, "candidates": None}
    return conversation(
        f"{record_id}-report", record_id, ecg, _DESCRIBE_QUESTION, text.strip(), meta
    )


def _yes_no(flag: bool) -> str:
    return YES_NO[0] if flag else YES_NO[1]


# --- ECG-QA ------------------------------------------------------------------------------------

_QA_REQUIRED = ("question", "answer", "ecg_id")


def read_ecgqa(path: Path) -> list[dict[str, Any]]:
    """The single-ECG questions of an ECG-QA JSON file, each checked; comparisons are refused.

    Every entry needs ``question`` (text), ``answer`` (a list of strings) and ``ecg_id`` (a list
    with one id); an entry that lacks them raises naming the file and its position.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (an ECG-QA JSON file)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgflowError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(entries, list):
        raise EcgflowError(f"{path}: expected a list of ECG-QA questions")
    for position, entry in enumerate(entries):
        where = f"{path}: entry {position}"
        if not isinstance(entry, dict):
            raise EcgflowError(f"{where} is not an object")
        missing = [key for key in _QA_REQUIRED if key not in entry]
        if missing:
            raise EcgflowError(f"{where} lacks {', '.join(missing)}")
        if not isinstance(entry["question"], str) or not entry["question"].strip():
            raise EcgflowError(f"{where}: question must be non-empty text")
        answer = entry["answer"]
        if not (isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer)):
            raise EcgflowError(f"{where}: answer must be a non-empty list of strings")
        ids = entry["ecg_id"]
        if not isinstance(ids, list) or len(ids) != 1:
            raise EcgflowError(
                f"{where}: ecg_id must list exactly one record (comparison questions are not "
                "supported)"
            )
    return entries


def ecgqa_instruction(entry: dict[str, Any], ecg: str, position: int) -> dict[str, Any]:
    """An ECG-QA entry as an instruction; yes/no-style answers keep their closed set."""
    answer = ", ".join(sorted(a.strip().lower() for a in entry["answer"]))
    question_type = str(entry.get("question_type") or "")
    candidates = [*YES_NO, "not sure"] if question_type.endswith("verify") else None
    attribute = entry.get("attribute")
    meta = {
        "kind": "ecgqa",
        "template_id": entry.get("template_id"),
        "attribute": ", ".join(attribute) if isinstance(attribute, list) else attribute,
        "question_type": question_type or None,
        "candidates": candidates,
    }
    key = entry.get("sample_id", position)
    record_id = str(entry["ecg_id"][0])
    return conversation(f"ecgqa-{key}", record_id, ecg, entry["question"].strip(), answer, meta)
