"""English texts per ingested ECG record, for contrastive ECG–text training.

Where each record's text comes from, by ``dataset``:

* ``ptbxl``: the descriptions of its SCP statements (``raw/scp_statements.csv``), by likelihood
  (descending, ties by code), e.g. ``"Normal ECG. Sinus rhythm."``; a code missing from the
  table stands for itself.
* ``cinc``: the SNOMED CT names of its ``# Dx:`` codes in header order, from the Challenge's
  ``raw/dx_mapping_scored.csv`` / ``raw/dx_mapping_unscored.csv`` where ingest copied them,
  else from the built-in scored classes of :mod:`ecgflow.labels.cinc`; an unknown code reads
  ``"SNOMED CT <code>."``.
* anything else (synthetic, folder, …): the report, else the labels as sentences.

Every phrase becomes a sentence (first letter capitalised, final period, runs of whitespace
collapsed, in reports too); repeated sentences are dropped. Records with nothing to say get ``""``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from ecgflow.artifacts import RAW, RECORDS
from ecgflow.errors import EcgflowError
from ecgflow.labels import explode_labels
from ecgflow.labels.cinc import SCORED_2021
from ecgflow.labels.cinc_tables import CODE, read_dx_mapping
from ecgflow.labels.ptbxl import STATEMENTS, read_statements

__all__ = ["record_texts"]

_COLUMNS = ("record_id", "dataset", "report", "labels", "scp_codes")
_CINC_TABLES = ("dx_mapping_scored.csv", "dx_mapping_unscored.csv")
_CODED_DATASETS = ("ptbxl", "cinc")  # texts from codes, which include_report extends


def record_texts(records_dir: Path, *, include_report: bool = False) -> dict[str, str]:
    """An English text per record_id of ingest folder ``records_dir`` (see the module docstring).

    With ``include_report`` the original report (PTB-XL: often German) follows the statements
    of PTB-XL and CinC records as ``" Report: <text>"``.
    """
    records_dir = Path(records_dir)
    records = _read_records(records_dir / RECORDS)
    texts = pd.Series("", index=records.index, dtype=object)
    for dataset, build in (("ptbxl", _ptbxl_texts), ("cinc", _cinc_texts)):
        selected = (records["dataset"] == dataset).to_numpy()
        if selected.any():
            texts.loc[selected] = build(records[selected], records_dir / RAW)
    coded = records["dataset"].isin(_CODED_DATASETS).to_numpy()
    if not coded.all():
        texts.loc[~coded] = _fallback_texts(records[~coded])
    if include_report:
        reports = records["report"][coded].map(_clean)
        texts.loc[coded] = [
            _with_report(text, report) for text, report in zip(texts[coded], reports, strict=True)
        ]
    return dict(zip(records["record_id"].astype(str), texts, strict=True))


def _read_records(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise EcgflowError(f"{path}: not found; record texts need an ingest output folder")
    try:
        present = set(pq.read_schema(path).names)
        records = pd.read_parquet(path, columns=[c for c in _COLUMNS if c in present])
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise EcgflowError(f"{path}: not a readable parquet file ({exc})") from exc
    if "record_id" not in records.columns:
        raise EcgflowError(f"{path}: no record_id column; is it ingest's {RECORDS}?")
    for column in _COLUMNS:
        if column not in records.columns:
            records[column] = None
    return records[list(_COLUMNS)].reset_index(drop=True)


# --- sentences ---------------------------------------------------------------------------------


def _clean(text: Any) -> str:
    """``text`` with runs of whitespace collapsed; ``""`` for null."""
    return " ".join(text.split()) if isinstance(text, str) else ""


def _sentence(phrase: str) -> str:
    """``"normal ECG"`` → ``"Normal ECG."``."""
    phrase = _clean(phrase)
    if not phrase:
        return ""
    phrase = phrase[0].upper() + phrase[1:]
    return phrase if phrase.endswith((".", "!", "?")) else f"{phrase}."


def _sentences(codes: pd.Series, phrase_of: Callable[[str], str]) -> pd.Series:
    """The sentence of each code, rendering every distinct code once."""
    lookup = {code: _sentence(phrase_of(code)) for code in codes.unique()}
    return codes.map(lookup)


def _join_per_row(rows: pd.Series, sentences: pd.Series, n_rows: int) -> list[str]:
    """Each row's sentences in order, repeats dropped, joined by spaces; ``""`` for none."""
    per_row: list[list[str]] = [[] for _ in range(n_rows)]
    for row, sentence in zip(rows.tolist(), sentences.tolist(), strict=True):
        if sentence and sentence not in per_row[row]:
            per_row[row].append(sentence)
    return [" ".join(sentences_of_row) for sentences_of_row in per_row]


def _with_report(text: str, report: str) -> str:
    """``"<text> Report: <report>"``, leaving out whichever part is empty."""
    return " ".join(part for part in (text, f"Report: {report}" if report else "") if part)


def _fallback_texts(records: pd.DataFrame) -> list[str]:
    """The report when there is one, else the labels as sentences."""
    labels = explode_labels(records)
    phrases = _sentences(labels["value"], lambda label: label.replace("_", " "))
    from_labels = _join_per_row(labels["row"], phrases, len(records))
    reports = (_clean(report) for report in records["report"])
    return [report or text for report, text in zip(reports, from_labels, strict=True)]


# --- PTB-XL ------------------------------------------------------------------------------------


def _ptbxl_texts(records: pd.DataFrame, raw_dir: Path) -> list[str]:
    path = raw_dir / STATEMENTS
    if not path.is_file():
        raise EcgflowError(
            f"{path}: not found; PTB-XL record texts need the SCP statement table, which ingest "
            "copies from the dataset folder (ingest with ptbxl:<folder>)"
        )
    descriptions = read_statements(path)["description"].dropna().astype(str).to_dict()
    pairs = _scp_pairs(records["record_id"], records["scp_codes"])
    pairs = pairs.sort_values(
        ["row", "likelihood", "code"], ascending=[True, False, True], kind="stable"
    )
    sentences = _sentences(pairs["code"], lambda code: descriptions.get(code) or code)
    return _join_per_row(pairs["row"], sentences, len(records))


def _scp_pairs(record_ids: Iterable[Any], scp_codes: Iterable[Any]) -> pd.DataFrame:
    """Long form ``row, code, likelihood`` of the records' ``scp_codes`` JSON objects."""
    rows: list[int] = []
    codes: list[str] = []
    likelihoods: list[Any] = []
    for row, (record_id, text) in enumerate(zip(record_ids, scp_codes, strict=True)):
        for code, likelihood in _scp_object(text, record_id).items():
            rows.append(row)
            codes.append(str(code))
            likelihoods.append(likelihood)
    return pd.DataFrame(
        {
            "row": pd.Series(rows, dtype="int64"),
            "code": pd.Series(codes, dtype=object),
            "likelihood": pd.to_numeric(pd.Series(likelihoods, dtype=object), errors="coerce"),
        }
    )


def _scp_object(text: Any, record_id: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EcgflowError(f"record {record_id}: scp_codes is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise EcgflowError(f"record {record_id}: scp_codes is not a JSON object: {text[:60]!r}")
    return value


# --- CinC --------------------------------------------------------------------------------------


def _cinc_texts(records: pd.DataFrame, raw_dir: Path) -> list[str]:
    names = _snomed_names(raw_dir)
    codes = explode_labels(records)
    sentences = _sentences(codes["value"], lambda code: names.get(code, f"SNOMED CT {code}"))
    return _join_per_row(codes["row"], sentences, len(records))


def _snomed_names(raw_dir: Path) -> dict[str, str]:
    """SNOMED CT code → Dx name: the built-in scored classes, then raw/'s mapping tables."""
    names = {code: dx for _, codes in SCORED_2021 for code, dx in codes}
    for filename in _CINC_TABLES:
        path = raw_dir / filename
        if path.is_file():
            names.update(_read_dx_mapping(path))
    return names


def _read_dx_mapping(path: Path) -> dict[str, str]:
    """Code → Dx name from either year's mapping table (``SNOMEDCTCode`` / ``SNOMED CT Code``)."""
    table = read_dx_mapping(path)
    codes, dx = table[CODE], table["Dx"]
    return dict(zip(codes[dx != ""], dx[dx != ""], strict=True))
