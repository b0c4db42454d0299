"""PhysioNet/CinC Challenge 2020 and 2021 scored classes (SNOMED CT codes from ``# Dx:``).

The Challenges score a fixed set of diagnoses and treat some pairs of codes as one class
(2021's ``weights.csv`` writes them as ``a|b``; 2020's lists both codes with equal weights):

* 2020 (evaluation-2020): 27 scored codes, 3 equivalent pairs → **24 classes**:
  713427006|59118001 (CRBBB/RBBB), 284470004|63593006 (PAC/SVPB), 427172004|17338001 (PVC/VPB).
* 2021 (evaluation-2021): the 2020 codes plus 6374002 (BBB), 365413008 (PRWP) and 733534002
  (CLBBB), which is scored together with 164909002 (LBBB): 30 codes, 4 pairs → **26 classes**.

The class table comes from the ingested ``raw/weights.csv`` (class order and pairs) and
``raw/dx_mapping_scored.csv`` (abbreviations, Dx names), in either year's layout
(:mod:`ecgflow.labels.cinc_tables`), when those are the requested year's (same scored codes);
tables of the other year, or none, give the built-in table below (facts about the Challenges,
in the order of 2021's weights.csv, i.e. by abbreviation); tables of neither year fail.
Columns are named by abbreviation; a merged pair takes the name of the plain diagnosis (RBBB,
LBBB, PAC, PVC). Codes a record has that are not scored are ignored, as the Challenge's
scoring does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ecgflow.errors import EcgflowError
from ecgflow.labels import Labeling, LabelSpec, describe_records, explode_labels, multi_hot
from ecgflow.labels.cinc_tables import CODE, read_dx_mapping, read_weights
from ecgflow.manifest import sha256_file

log = logging.getLogger(__name__)

WEIGHTS = "weights.csv"
DX_MAPPING = "dx_mapping_scored.csv"

#: 2021's scored classes in weights.csv order (by abbreviation): column name and, for each
#: SNOMED CT code scored as that class, the Challenge's Dx name.
SCORED_2021: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("AF", (("164889003", "atrial fibrillation"),)),
    ("AFL", (("164890007", "atrial flutter"),)),
    ("BBB", (("6374002", "bundle branch block"),)),
    ("Brady", (("426627000", "bradycardia"),)),
    (
        "LBBB",
        (
            ("733534002", "complete left bundle branch block"),
            ("164909002", "left bundle branch block"),
        ),
    ),
    (
        "RBBB",
        (
            ("713427006", "complete right bundle branch block"),
            ("59118001", "right bundle branch block"),
        ),
    ),
    ("IAVB", (("270492004", "1st degree av block"),)),
    ("IRBBB", (("713426002", "incomplete right bundle branch block"),)),
    ("LAD", (("39732003", "left axis deviation"),)),
    ("LAnFB", (("445118002", "left anterior fascicular block"),)),
    ("LPR", (("164947007", "prolonged pr interval"),)),
    ("LQRSV", (("251146004", "low qrs voltages"),)),
    ("LQT", (("111975006", "prolonged qt interval"),)),
    ("NSIVCB", (("698252002", "nonspecific intraventricular conduction disorder"),)),
    ("NSR", (("426783006", "sinus rhythm"),)),
    (
        "PAC",
        (
            ("284470004", "premature atrial contraction"),
            ("63593006", "supraventricular premature beats"),
        ),
    ),
    ("PR", (("10370003", "pacing rhythm"),)),
    ("PRWP", (("365413008", "poor R wave Progression"),)),
    (
        "PVC",
        (
            ("427172004", "premature ventricular contractions"),
            ("17338001", "ventricular premature beats"),
        ),
    ),
    ("QAb", (("164917005", "qwave abnormal"),)),
    ("RAD", (("47665007", "right axis deviation"),)),
    ("SA", (("427393009", "sinus arrhythmia"),)),
    ("SB", (("426177001", "sinus bradycardia"),)),
    ("STach", (("427084000", "sinus tachycardia"),)),
    ("TAb", (("164934002", "t wave abnormal"),)),
    ("TInv", (("59931005", "t wave inversion"),)),
)
#: 2021's additions over 2020; in 2020 LBBB is 164909002 alone (CLBBB was not scored).
NEW_IN_2021 = frozenset({"6374002", "365413008", "733534002"})
#: Preferred column names of merged pairs (otherwise: the first code's abbreviation).
_MERGED_NAMES = {
    frozenset(c for c, _ in codes): name for name, codes in SCORED_2021 if len(codes) > 1
}

#: One scored class: (codes scored as one class, column name, description).
ScoredClass = tuple[tuple[str, ...], str, str]


def scored_classes(year: int) -> list[ScoredClass]:
    """The built-in scored classes of the ``year`` Challenge (2020 or 2021)."""
    if year not in (2020, 2021):
        raise EcgflowError(f"CinC scored classes exist for 2020 and 2021, not {year}")
    classes = []
    for name, codes in SCORED_2021:
        kept = [(code, dx) for code, dx in codes if year == 2021 or code not in NEW_IN_2021]
        if kept:
            classes.append((tuple(c for c, _ in kept), name, "; ".join(dx for _, dx in kept)))
    return classes


def cinc_labels(year: int, records: pd.DataFrame, raw_dir: Path) -> Labeling:
    """Label ``records`` with the ``year`` Challenge's scored classes."""
    pairs = explode_labels(records)
    not_codes = pairs[~pairs["value"].str.fullmatch(r"\d+")]
    if len(pairs) == 0 or len(not_codes):
        example = (
            f" (record {records['record_id'].iat[int(not_codes['row'].iat[0])]} has "
            f"{not_codes['value'].iat[0]!r})"
            if len(not_codes)
            else ""
        )
        raise EcgflowError(
            f"label set cinc{year}-scored needs SNOMED CT codes (the '# Dx:' of PhysioNet/CinC "
            f"headers) in records.parquet labels; {describe_records(records)} has none{example}"
        )
    classes, inputs, table = _class_table(year, raw_dir)
    code_to_class = {code: name for codes, name, _ in classes for code in codes}
    targets = pairs["value"].map(code_to_class)
    known = targets.notna()
    names = [name for _, name, _ in classes]
    matrix = multi_hot(len(records), pairs["row"][known], targets[known], names)
    specs = [LabelSpec(name, description) for _, name, description in classes]
    info = {
        "challenge_year": year,
        "table": table,
        "equivalent_codes": {name: list(codes) for codes, name, _ in classes if len(codes) > 1},
        "codes": {name: list(codes) for codes, name, _ in classes},
        "unscored_code_mentions": int((~known).sum()),
    }
    return Labeling(labels=specs, matrix=matrix, inputs=inputs, info=info)


def _class_table(year: int, raw_dir: Path) -> tuple[list[ScoredClass], dict[str, str], str]:
    """The classes from raw/'s scoring tables when they are ``year``'s, else the built-in ones.

    Tables of the other Challenge year give way to the built-in table; tables scoring neither
    year's codes fail, naming the file.
    """
    builtin = scored_classes(year)
    weights, mapping = raw_dir / WEIGHTS, raw_dir / DX_MAPPING
    if not (weights.is_file() and mapping.is_file()):
        return builtin, {}, "built-in"
    classes = read_scoring_tables(weights, mapping)
    scored = {code for codes, _, _ in classes for code in codes}
    if scored != _scored_codes(year):
        other = 2021 if year == 2020 else 2020
        if scored != _scored_codes(other):
            raise EcgflowError(
                f"{weights}: scores {len(classes)} classes ({len(scored)} codes) that are "
                f"neither the 2020 nor the 2021 Challenge's; cinc{year}-scored needs the {year} "
                "tables (or none: the built-in classes)"
            )
        log.info("raw/%s is the %d table; cinc%d uses the built-in table", WEIGHTS, other, year)
        return builtin, {}, f"built-in (raw/{WEIGHTS} is the {other} table)"
    inputs = {f"raw/{WEIGHTS}": sha256_file(weights), f"raw/{DX_MAPPING}": sha256_file(mapping)}
    return classes, inputs, f"raw/{WEIGHTS} + raw/{DX_MAPPING}"


def _scored_codes(year: int) -> set[str]:
    return {code for codes, _, _ in scored_classes(year) for code in codes}


def read_scoring_tables(weights: Path, mapping: Path) -> list[ScoredClass]:
    """Scored classes from either year's ``weights.csv`` and ``dx_mapping_scored.csv``.

    Equivalent codes are merged into one class as the official scoring does
    (:mod:`ecgflow.labels.cinc_tables`).
    """
    header, _ = read_weights(weights)
    table = read_dx_mapping(mapping, ("Dx", "Abbreviation"))
    rows = table.drop_duplicates(CODE).set_index(CODE)
    classes = []
    for codes in header:
        absent = [c for c in codes if c not in rows.index]
        if absent:
            raise EcgflowError(f"{mapping}: scored code(s) {absent} of {weights.name} not listed")
        name = _MERGED_NAMES.get(frozenset(codes), str(rows.at[codes[0], "Abbreviation"]))
        description = "; ".join(str(rows.at[c, "Dx"]) for c in codes)
        classes.append((codes, name, description))
    return classes
