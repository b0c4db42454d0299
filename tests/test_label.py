"""The label stage on real data: PTB-XL (checked against an independent computation from the
original CSVs), CinC 2020/2021 scored classes, report patterns, mapping CSVs, synthetic."""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.io.synthetic_ecg import SYNTHETIC_CLASSES
from ecgflow.manifest import sha256_file
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LABEL_SETS, LabelParams, LabelResult, label


def run(records_dir: Path, out: Path, label_set: str, **kwargs) -> tuple:
    result = label(LabelParams(label_set=label_set, **kwargs), records_dir, out)
    labels = pd.read_parquet(out / "labels.parquet")
    label_def = json.loads((out / "label_def.json").read_text())
    return result, labels, label_def


def positives(labels: pd.DataFrame, names: list[str]) -> list[set[str]]:
    """The set of label columns equal to 1, per row."""
    values = labels[names].to_numpy()
    return [{names[j] for j in np.flatnonzero(row)} for row in values]


# --- PTB-XL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ptbxl") / "ingest"
    ingest(IngestParams(source=f"ptbxl:{shared_data / 'ptbxl'}"), out)
    return out


def expected_ptbxl(shared: Path, level: str) -> tuple[list[str], list[set[str]], list[str]]:
    """Record ids, per-record label sets and the label universe, straight from the CSVs.

    Written from the PTB-XL benchmark's description: a key of scp_codes counts (whatever its
    likelihood) when its statement has the level's flag; diagnostic keys map to their class
    or subclass.
    """
    database = pd.read_csv(shared / "ptbxl" / "ptbxl_database.csv")
    statements = pd.read_csv(shared / "ptbxl" / "scp_statements.csv", index_col=0)
    scp = database["scp_codes"].apply(ast.literal_eval)
    if level == "all":
        table, to_label = statements, {code: code for code in statements.index}
    else:
        flag = "diagnostic" if level.endswith("diagnostic") else level
        table = statements[statements[flag] == 1.0]
        column = {"superdiagnostic": "diagnostic_class", "subdiagnostic": "diagnostic_subclass"}
        if level in column:
            to_label = table[column[level]].dropna().to_dict()
        else:
            to_label = {code: code for code in table.index}
    sets = [{to_label[key] for key in codes if key in to_label} for codes in scp]
    return database["ecg_id"].astype(str).tolist(), sets, sorted(set(to_label.values()))


@pytest.mark.parametrize(
    "level", ["superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all"]
)
def test_ptbxl_sets_equal_independent_computation(
    shared_data: Path, ptbxl: Path, tmp_path: Path, level: str
) -> None:
    result, labels, label_def = run(ptbxl, tmp_path / "out", f"ptbxl-{level}")
    ids, sets, universe = expected_ptbxl(shared_data, level)
    names = [entry["name"] for entry in label_def["labels"]]
    if level == "superdiagnostic":
        assert names == ["NORM", "MI", "STTC", "CD", "HYP"]
    else:
        assert names == universe  # every class/code of the table, sorted by code
    assert result.labels == names and result.label_set == f"ptbxl-{level}"
    assert labels["record_id"].tolist() == ids
    assert positives(labels, names) == sets
    counts = Counter(name for labels_of_record in sets for name in labels_of_record)
    assert {e["name"]: e["count"] for e in label_def["labels"]} == {n: counts[n] for n in names}
    empty = [not s for s in sets]
    assert labels["no_label"].tolist() == empty
    assert (result.n_records, result.n_empty, result.n_dropped) == (500, sum(empty), 0)


def test_ptbxl_superclass_counts_and_label_def(ptbxl: Path, tmp_path: Path) -> None:
    result, labels, label_def = run(ptbxl, tmp_path / "out", "ptbxl-superdiagnostic")
    counts = {"NORM": 297, "MI": 73, "STTC": 96, "CD": 78, "HYP": 40}  # measured, shared 500
    assert {e["name"]: e["count"] for e in label_def["labels"]} == counts
    assert result.n_empty == 12 and label_def["n_records"] == 500
    norm = label_def["labels"][0]
    assert norm["description"] == "normal ECG"
    assert norm["prevalence"] == pytest.approx(297 / 500)
    assert norm["pos_weight"] == pytest.approx(203 / 297)
    hyp = label_def["labels"][4]
    assert hyp["pos_weight"] == pytest.approx(460 / 40)
    assert label_def["label_set"] == "ptbxl-superdiagnostic"
    assert result.metrics == {"n_records": 500, "n_labels": 5, "n_empty": 12, "n_dropped": 0}


def test_ptbxl_codes_count_whatever_their_likelihood(ptbxl: Path, tmp_path: Path) -> None:
    # ecg_id 1: {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    _, form, _ = run(ptbxl, tmp_path / "form", "ptbxl-form")
    _, rhythm, _ = run(ptbxl, tmp_path / "rhythm", "ptbxl-rhythm")
    assert form.loc[0, "LVOLT"] == 1 and rhythm.loc[0, "SR"] == 1


def test_ptbxl_zero_count_labels_have_null_pos_weight(ptbxl: Path, tmp_path: Path) -> None:
    _, labels, label_def = run(ptbxl, tmp_path / "out", "ptbxl-all")
    assert len(label_def["labels"]) == 71
    zero = [e for e in label_def["labels"] if e["count"] == 0]
    assert {e["name"] for e in zero} >= {"2AVB", "3AVB", "BIGU", "PSVT", "TRIGU"}
    assert all(e["pos_weight"] is None and e["prevalence"] == 0 for e in zero)
    assert labels["no_label"].sum() == 0  # every record has at least one SCP code


def test_ptbxl_drop_empty(shared_data: Path, ptbxl: Path, tmp_path: Path) -> None:
    result, labels, label_def = run(ptbxl, tmp_path / "out", "ptbxl-rhythm", drop_empty=True)
    ids, sets, _ = expected_ptbxl(shared_data, "rhythm")
    kept = [i for i, s in zip(ids, sets, strict=True) if s]
    assert labels["record_id"].tolist() == kept  # records.parquet order, empties dropped
    assert len(kept) == 471 and not labels["no_label"].any()
    assert (result.n_records, result.n_empty, result.n_dropped) == (471, 29, 29)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"] == {"read": 500, "written": 471, "empty": 29, "dropped": 29}
    assert manifest["params"] == {"label_set": "ptbxl-rhythm", "drop_empty": True}
    sr = next(e for e in label_def["labels"] if e["name"] == "SR")
    assert sr["count"] == 407 and sr["prevalence"] == pytest.approx(407 / 471)
    assert sr["pos_weight"] == pytest.approx(64 / 407)


def test_ptbxl_outputs_schema_manifest_and_determinism(ptbxl: Path, tmp_path: Path) -> None:
    run(ptbxl, tmp_path / "a", "ptbxl-subdiagnostic")
    run(ptbxl, tmp_path / "b", "ptbxl-subdiagnostic")
    for name in ("labels.parquet", "label_def.json", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    schema = pq.read_schema(tmp_path / "a" / "labels.parquet")
    assert schema.names[0] == "record_id" and schema.names[-1] == "no_label"
    assert str(schema.field("record_id").type) == "string"
    assert str(schema.field("no_label").type) == "bool"
    assert {str(schema.field(n).type) for n in schema.names[1:-1]} == {"uint8"}
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["stage"] == "label"
    assert manifest["inputs"] == {
        "records.parquet": sha256_file(ptbxl / "records.parquet"),
        "raw/scp_statements.csv": sha256_file(ptbxl / "raw" / "scp_statements.csv"),
    }
    assert set(manifest["files"]) == {"labels.parquet", "label_def.json"}
    assert manifest["files"]["labels.parquet"] == sha256_file(tmp_path / "a" / "labels.parquet")


def test_ptbxl_set_needs_the_statement_table(ptbxl: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ingest"
    copy.mkdir()
    shutil.copy(ptbxl / "records.parquet", copy)
    shutil.copy(ptbxl / "manifest.json", copy)
    with pytest.raises(EcgflowError, match=r"scp_statements\.csv: not found"):
        run(copy, tmp_path / "out", "ptbxl-superdiagnostic")


def test_ptbxl_report_patterns_runs_on_mixed_language_reports(ptbxl: Path, tmp_path: Path) -> None:
    result, labels, label_def = run(ptbxl, tmp_path / "out", "report-patterns")
    assert result.labels[1] == "Sinus rhythm" and len(result.labels) == 17
    # "sinus rhythm. normal ecg." (English) is labelled; German reports mostly are not
    database = pd.read_csv(Path(str(ptbxl)) / "raw" / "ptbxl_database.csv")
    english = database["report"].str.startswith("sinus rhythm.").to_numpy()
    assert labels.loc[english, "Sinus rhythm"].eq(1).all()
    assert label_def["info"]["config"] == "ecg-fm-17"


# --- CinC 2020 / 2021 --------------------------------------------------------------------------

#: Extra codes appended to some headers' "# Dx:" so every equivalence occurs in the data.
INJECTED = {
    "E07500": ["713427006", "59118001"],  # CRBBB + RBBB in one record → one RBBB
    "E07501": ["17338001", "63593006"],  # VPB → PVC, SVPB → PAC
    "E07502": ["733534002"],  # CLBBB → LBBB in 2021; not scored in 2020
    "E07503": ["164909002", "6374002"],  # LBBB; BBB (2021 only)
}
#: The Challenges' equivalent codes → the code whose abbreviation names the merged column.
EQUIVALENT_2021 = {
    "713427006": "59118001",
    "63593006": "284470004",
    "17338001": "427172004",
    "733534002": "164909002",
}
ONLY_2021 = {"6374002", "365413008", "733534002"}


@pytest.fixture(scope="module")
def cinc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cinc")
    source = root / "source"
    shutil.copytree(shared_data / "cinc2021", source)
    for record, codes in INJECTED.items():
        header = source / f"{record}.hea"
        dx = re.search(r"# Dx: *(\S+)", header.read_text())
        assert dx is not None
        extended = ",".join([dx.group(1), *codes])
        header.write_text(header.read_text().replace(dx.group(0), f"# Dx: {extended}"))
    ingest(IngestParams(source=str(source)), root / "ingest")
    return root


def expected_cinc(source: Path, year: int) -> tuple[list[str], list[set[str]], list[str]]:
    """Record ids, label sets and column names from the headers and the Challenge mapping."""
    mapping = pd.read_csv(source / "dx_mapping_scored.csv", dtype=str)
    abbreviation = dict(zip(mapping["SNOMEDCTCode"], mapping["Abbreviation"], strict=True))
    equivalent = dict(EQUIVALENT_2021)
    if year == 2020:
        abbreviation = {c: a for c, a in abbreviation.items() if c not in ONLY_2021}
        del equivalent["733534002"]
    ids, sets = [], []
    for header in sorted(source.glob("*.hea")):
        dx = next(ln for ln in header.read_text().splitlines() if ln.startswith("# Dx:"))
        codes = [c.strip() for c in dx.split(":", 1)[1].split(",")]
        ids.append(header.stem)
        sets.append({abbreviation[equivalent.get(c, c)] for c in codes if c in abbreviation})
    names = sorted({abbreviation[equivalent.get(c, c)] for c in abbreviation})
    return ids, sets, names


@pytest.mark.parametrize(("year", "size"), [(2020, 24), (2021, 26)])
def test_cinc_scored_classes_with_equivalences(
    cinc: Path, tmp_path: Path, year: int, size: int
) -> None:
    result, labels, label_def = run(cinc / "ingest", tmp_path / "out", f"cinc{year}-scored")
    ids, sets, names = expected_cinc(cinc / "source", year)
    assert len(result.labels) == size == len(names)
    assert sorted(result.labels) == names
    assert labels["record_id"].tolist() == ids
    assert positives(labels, result.labels) == sets
    assert {"CRBBB", "SVPB", "VPB", "CLBBB"}.isdisjoint(result.labels)
    row = dict(zip(ids, range(len(ids)), strict=True))
    assert labels.loc[row["E07500"], "RBBB"] == 1
    assert labels.loc[row["E07501"], ["PVC", "PAC"]].tolist() == [1, 1]
    assert labels.loc[row["E07502"], "LBBB"] == (1 if year == 2021 else 0)
    assert ("BBB" in result.labels) == (year == 2021)
    assert label_def["info"]["challenge_year"] == year
    assert len(label_def["info"]["equivalent_codes"]) == (4 if year == 2021 else 3)


def test_cinc2021_uses_raw_tables_and_matches_builtin(cinc: Path, tmp_path: Path) -> None:
    _, _, with_tables = run(cinc / "ingest", tmp_path / "raw", "cinc2021-scored")
    assert with_tables["info"]["table"] == "raw/weights.csv + raw/dx_mapping_scored.csv"
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert "raw/weights.csv" in manifest["inputs"]
    stripped = tmp_path / "ingest"
    shutil.copytree(cinc / "ingest", stripped)
    for name in ("weights.csv", "dx_mapping_scored.csv"):
        (stripped / "raw" / name).unlink()
    _, _, builtin = run(stripped, tmp_path / "builtin", "cinc2021-scored")
    assert builtin["info"]["table"] == "built-in"
    assert builtin["labels"] == with_tables["labels"]  # names, order, descriptions, counts
    first = (tmp_path / "raw" / "labels.parquet").read_bytes()
    assert (tmp_path / "builtin" / "labels.parquet").read_bytes() == first


def test_cinc2020_ignores_the_2021_tables(cinc: Path, tmp_path: Path) -> None:
    _, _, label_def = run(cinc / "ingest", tmp_path / "out", "cinc2020-scored")
    assert label_def["info"]["table"].startswith("built-in")


def test_cinc_set_on_ptbxl_records_fails(ptbxl: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"SNOMED CT codes.*'ptbxl'.*'LVOLT'"):
        run(ptbxl, tmp_path / "out", "cinc2021-scored")


def test_ptbxl_set_on_cinc_records_fails(cinc: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"'cinc'.*no scp_codes"):
        run(cinc / "ingest", tmp_path / "out", "ptbxl-superdiagnostic")


# --- synthetic, report patterns, mapping ----------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "ingest"
    ingest(IngestParams(source="synthetic://?n=40"), out)
    return out


def synthetic_classes(folder: Path) -> list[str]:
    records = pd.read_parquet(folder / "records.parquet")
    return [str(values[0]) for values in records["labels"]]


def test_synthetic_set(synthetic: Path, tmp_path: Path) -> None:
    result, labels, label_def = run(synthetic, tmp_path / "out", "synthetic")
    classes = synthetic_classes(synthetic)
    assert result.labels == list(SYNTHETIC_CLASSES)
    assert positives(labels, result.labels) == [{c} for c in classes]
    assert not labels["no_label"].any()
    counts = Counter(classes)
    assert {e["name"]: e["count"] for e in label_def["labels"]} == {
        c: counts[c] for c in SYNTHETIC_CLASSES
    }


def test_synthetic_set_on_real_records_fails(cinc: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="generator classes"):
        run(cinc / "ingest", tmp_path / "out", "synthetic")


def test_report_patterns_on_synthetic_reports(synthetic: Path, tmp_path: Path) -> None:
    _, labels, _ = run(synthetic, tmp_path / "out", "report-patterns")
    expected = {
        "normal_sinus_rhythm": {"Sinus rhythm"},
        "sinus_bradycardia": {"Sinus rhythm", "Bradycardia"},
        "sinus_tachycardia": {"Sinus rhythm", "Tachycardia"},
        "atrial_fibrillation": {"Atrial fibrillation"},
        "st_elevation_anterior": {"Sinus rhythm", "Infarction"},
        "st_elevation_inferior": {"Sinus rhythm", "Infarction"},
        "left_bundle_branch_block": {"Sinus rhythm", "Left bundle branch block"},
        "right_bundle_branch_block": {"Sinus rhythm", "Right bundle branch block"},
        "left_ventricular_hypertrophy": {"Sinus rhythm"},
    }
    names = [c for c in labels.columns if c not in ("record_id", "no_label")]
    got = positives(labels, names)
    assert got == [expected[c] for c in synthetic_classes(synthetic)]


def test_report_patterns_custom_config_with_ignore(synthetic: Path, tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "name: hedged\nuncertain: ignore\nuncertainty: {before: ['consistent with']}\n"
        "labels:\n  - {name: STEMI, patterns: ['stemi']}\n"
        "  - {name: AF, patterns: ['atrial fibrillation']}\n"
    )
    result, labels, label_def = run(synthetic, tmp_path / "out", f"report-patterns:{config}")
    reports = pd.read_parquet(synthetic / "records.parquet")["report"]
    hedged = reports.str.contains("consistent with acute", case=False).to_numpy()
    assert hedged.any()
    assert labels.loc[hedged, "STEMI"].eq(0).all()
    uncertain = pd.read_parquet(tmp_path / "out" / "uncertain.parquet")
    assert uncertain["label"].unique().tolist() == ["STEMI"]
    assert sorted(uncertain["record_id"]) == sorted(labels.loc[hedged, "record_id"])
    assert label_def["info"]["uncertain"] == "ignore"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"]["cfg.yaml"] == sha256_file(config)
    assert "uncertain.parquet" in manifest["files"]
    # a later run without ignore leaves no stale uncertain.parquet behind
    run(synthetic, tmp_path / "out", "report-patterns")
    assert not (tmp_path / "out" / "uncertain.parquet").exists()


def test_report_patterns_bad_config_names_file(synthetic: Path, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("name: x\nlabels:\n  - {name: A, patterns: ['(']}\n")
    with pytest.raises(EcgflowError, match=r"broken\.yaml: field labels\[0\] \(A\)\.patterns"):
        run(synthetic, tmp_path / "out", f"report-patterns:{config}")


def test_report_patterns_needs_reports(cinc: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="needs report text"):
        run(cinc / "ingest", tmp_path / "out", "report-patterns")


def write_mapping(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_mapping_csv_with_other(synthetic: Path, tmp_path: Path) -> None:
    csv = write_mapping(
        tmp_path / "map.csv",
        "source,label\n"
        "sinus_bradycardia,Brady\n"
        "sinus_tachycardia,Tachy\n"
        "atrial_fibrillation,Arrhythmia\n"
        "sinus_bradycardia,Arrhythmia\n"
        "syn00004,Special\n"
        "not_a_class,Never\n",
    )
    result, labels, label_def = run(synthetic, tmp_path / "out", f"mapping:{csv}")
    assert result.labels == ["Brady", "Tachy", "Arrhythmia", "Special", "Never", "OTHER"]
    classes = synthetic_classes(synthetic)
    ids = labels["record_id"].tolist()
    by_class = {
        "sinus_bradycardia": {"Brady", "Arrhythmia"},
        "sinus_tachycardia": {"Tachy"},
        "atrial_fibrillation": {"Arrhythmia"},
    }
    expected = []
    for record_id, cls in zip(ids, classes, strict=True):
        found = set(by_class.get(cls, set())) | ({"Special"} if record_id == "syn00004" else set())
        expected.append(found or {"OTHER"})
    assert positives(labels, result.labels) == expected
    assert result.n_empty == 0 and not labels["no_label"].any()
    assert label_def["info"]["unused_sources"] == ["not_a_class"]
    never = next(e for e in label_def["labels"] if e["name"] == "Never")
    assert never["count"] == 0 and never["pos_weight"] is None


def test_mapping_on_snomed_codes(cinc: Path, tmp_path: Path) -> None:
    csv = write_mapping(tmp_path / "m.csv", "source,label\n426783006,normal\n427084000,fast\n")
    _, labels, _ = run(cinc / "ingest", tmp_path / "out", f"mapping:{csv}")
    ids, _, _ = expected_cinc(cinc / "source", 2021)
    dx = {
        h.stem: next(ln for ln in h.read_text().splitlines() if ln.startswith("# Dx:"))
        for h in (cinc / "source").glob("*.hea")
    }
    assert labels["normal"].tolist() == [int("426783006" in dx[i]) for i in ids]
    assert labels["fast"].tolist() == [int("427084000" in dx[i]) for i in ids]
    neither = [("426783006" not in dx[i]) and ("427084000" not in dx[i]) for i in ids]
    assert labels["OTHER"].tolist() == [int(n) for n in neither]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("src,label\na,b\n", r"line 1: header is \['src', 'label'\]"),
        ("source,label\na,b\nc,d,e\n", "line 3: 3 field"),
        ("source,label\na,\n", "line 2: empty label"),
        ("source,label\n,x\n", "line 2: empty source"),
        ("source,label\n", "no mapping rows"),
        ("", "empty mapping CSV"),
        ("source,label\na,no_label\n", "reserved"),
    ],
)
def test_mapping_csv_errors(synthetic: Path, tmp_path: Path, content: str, expected: str) -> None:
    csv = write_mapping(tmp_path / "bad.csv", content)
    with pytest.raises(EcgflowError, match=expected) as info:
        run(synthetic, tmp_path / "out", f"mapping:{csv}")
    if "reserved" not in expected:
        assert str(csv) in str(info.value)


# --- label-set names and inputs ---------------------------------------------------------------


def test_unknown_label_set_lists_valid_ones(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match="unknown label set 'ptbxl-super'") as info:
        run(synthetic, tmp_path / "out", "ptbxl-super")
    for name in LABEL_SETS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("label_set", "expected"),
    [
        ("mapping", "needs a CSV file"),
        ("mapping:", "needs a CSV file"),
        ("synthetic:x", "takes no ':' argument"),
        ("report-patterns:", "needs a config file"),
        ("mapping:/nonexistent/map.csv", "map.csv: mapping CSV not found"),
        ("report-patterns:/nonexistent/c.yaml", "c.yaml: cannot read"),
    ],
)
def test_label_set_argument_errors(
    synthetic: Path, tmp_path: Path, label_set: str, expected: str
) -> None:
    with pytest.raises(EcgflowError, match=expected):
        run(synthetic, tmp_path / "out", label_set)


def test_missing_records_and_bad_params(tmp_path: Path) -> None:
    with pytest.raises(EcgflowError, match=r"records\.parquet: not found"):
        label(LabelParams(label_set="synthetic"), tmp_path / "none", tmp_path / "out")
    with pytest.raises(EcgflowError, match=r"label\.extra / --extra: Extra inputs"):
        LabelParams(label_set="synthetic", drop_empty=True, extra=1)  # type: ignore[call-arg]


def test_label_sets_listing() -> None:
    assert LABEL_SETS[:6] == [
        f"ptbxl-{level}"
        for level in ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
    ]
    assert {"cinc2020-scored", "cinc2021-scored", "synthetic"} <= set(LABEL_SETS)
    assert isinstance(LabelResult.metrics, property)


def test_auto_picks_the_datasets_usual_set(tmp_path: Path) -> None:
    ingest(IngestParams(source="synthetic://?n=9&seed=5"), tmp_path / "rec")
    result = label(LabelParams(label_set="auto"), tmp_path / "rec", tmp_path / "lab")
    assert result.label_set == "synthetic" and len(result.labels) == 9
    folder = tmp_path / "mine"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((12, 500), dtype="float32"))
    ingest(IngestParams(source=f"folder:{folder}?fs=500"), tmp_path / "rec2")
    with pytest.raises(EcgflowError, match="label set 'auto' knows datasets"):
        label(LabelParams(label_set="auto"), tmp_path / "rec2", tmp_path / "lab2")
