"""The split stage and the iterative stratification behind it, on PTB-XL, synthetic data and
small hand-made inputs.

Tolerances used below (records 300 synthetic / 500 PTB-XL, ratios 0.8 / 0.1 / 0.1):
* split sizes: each split's fraction of the records within 0.02 of its ratio;
* prevalence: for every label with >= 30 positives, each split's prevalence within 0.05
  (absolute) of the overall prevalence;
* stratified vs a plain random patient split: over 5 seeds, the mean of the worst per-label
  prevalence deviation is at most half the random split's;
* CV folds: every fold within 10 % (synthetic) / 15 % (PTB-XL, multi-label) of N / K records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ecgflow.errors import EcgflowError
from ecgflow.group_stratification import (
    group_rows,
    iterative_stratification,
    stratified_group_split,
)
from ecgflow.manifest import INCOMPLETE, sha256_file, write_manifest
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.split import SplitParams, SplitResult, split

SPLITS = ("train", "val", "test")
SIZE_TOLERANCE = 0.02
PREVALENCE_TOLERANCE = 0.05
MIN_POSITIVES = 30


# --- inputs ------------------------------------------------------------------------------------


def write_labels(folder: Path, record_ids: list[str], names: list[str], matrix: np.ndarray) -> Path:
    """labels.parquet as the label stage writes it: record_id, uint8 0/1 columns, no_label."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = {"record_id": pa.array(record_ids, pa.string())}
    for i, name in enumerate(names):
        columns[name] = pa.array(matrix[:, i].astype(np.uint8))
    columns["no_label"] = pa.array(matrix.sum(axis=1) == 0)
    pq.write_table(pa.table(columns), folder / "labels.parquet")
    write_manifest(folder, stage="label")  # a complete stage output: split accepts no other
    return folder


def superclasses(records: pd.DataFrame, scp_statements: Path) -> tuple[list[str], np.ndarray]:
    """PTB-XL diagnostic superclasses (NORM, MI, STTC, CD, HYP) of every record."""
    table = pd.read_csv(scp_statements, index_col=0)
    diagnostic = table[table["diagnostic"] == 1]["diagnostic_class"].to_dict()
    names = sorted(set(diagnostic.values()))
    classes = [{diagnostic.get(code) for code in json.loads(s)} for s in records["scp_codes"]]
    return names, np.array([[int(n in c) for n in names] for c in classes], dtype=np.int64)


class Data:
    """An ingested data set with its labels."""

    def __init__(self, records_dir: Path, names: list[str], matrix: np.ndarray) -> None:
        self.records_dir = records_dir
        self.records = pd.read_parquet(records_dir / "records.parquet")
        self.names, self.matrix = names, matrix
        ids = self.records["record_id"].tolist()
        self.labels_dir = write_labels(records_dir.parent / "labels", ids, names, matrix)

    def run(self, out: Path, **params) -> tuple[SplitResult, pd.DataFrame]:
        result = split(SplitParams(**params), self.records_dir, self.labels_dir, out)
        return result, pd.read_parquet(out / "split.parquet")


@pytest.fixture(scope="module")
def ptbxl(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Data:
    out = tmp_path_factory.mktemp("ptbxl") / "records"
    ingest(IngestParams(source=f"ptbxl:{shared_data / 'ptbxl'}"), out)
    records = pd.read_parquet(out / "records.parquet")
    names, matrix = superclasses(records, out / "raw" / "scp_statements.csv")
    return Data(out, names, matrix)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Data:
    out = tmp_path_factory.mktemp("synthetic") / "records"
    ingest(IngestParams(source="synthetic://?n=300&seed=1"), out)
    records = pd.read_parquet(out / "records.parquet")
    names = sorted({label for labels in records["labels"] for label in labels})
    matrix = np.array([[int(n in labels) for n in names] for labels in records["labels"]])
    return Data(out, names, matrix)


# --- checks ------------------------------------------------------------------------------------


def split_index(assigned: pd.DataFrame) -> np.ndarray:
    return assigned["split"].map({name: i for i, name in enumerate(SPLITS)}).to_numpy()


def assert_group_disjoint(data: Data, assigned: pd.DataFrame, column: str) -> None:
    """No patient (records without one: no record) spans two values of ``column``."""
    assert assigned["record_id"].tolist() == data.records["record_id"].tolist()
    patient = data.records["patient_id"].fillna("record:" + data.records["record_id"])
    spread = assigned[column].groupby(patient.to_numpy()).nunique(dropna=False)
    assert spread.max() == 1, spread[spread > 1].head()


def max_deviation(
    matrix: np.ndarray, subset: np.ndarray, labels: np.ndarray | None = None
) -> float:
    """Worst |prevalence in a non-empty subset - overall prevalence| over the chosen labels."""
    columns = np.arange(matrix.shape[1]) if labels is None else labels
    overall = matrix[:, columns].mean(axis=0)
    return max(
        float(np.abs(matrix[subset == j][:, columns].mean(axis=0) - overall).max())
        for j in np.unique(subset)
    )


def random_patient_split(data: Data, ratios: tuple[float, ...], seed: int) -> np.ndarray:
    """Baseline: shuffle patients, cut the list where the cumulative record count hits ratios."""
    patient = data.records["patient_id"].fillna("record:" + data.records["record_id"])
    groups = patient.unique()
    np.random.default_rng(seed).shuffle(groups)
    sizes = patient.value_counts()[groups].to_numpy()
    ends = np.cumsum(sizes) / sizes.sum()
    subset = np.searchsorted(np.cumsum(ratios)[:-1], ends - 1e-9)
    return patient.map(dict(zip(groups, subset, strict=True))).to_numpy()


def assert_stratified(data: Data, assigned: pd.DataFrame, ratios: tuple[float, ...]) -> None:
    subset = split_index(assigned)
    fractions = np.bincount(subset, minlength=3) / len(subset)
    np.testing.assert_allclose(fractions, ratios, atol=SIZE_TOLERANCE)
    common = np.flatnonzero(data.matrix.sum(axis=0) >= MIN_POSITIVES)
    assert common.size >= 5
    assert max_deviation(data.matrix, subset, common) <= PREVALENCE_TOLERANCE


def assert_beats_random(data: Data, tmp_path: Path, **params) -> tuple[float, float]:
    stratified, random = [], []
    for seed in range(5):
        _, assigned = data.run(tmp_path / f"seed{seed}", seed=seed, **params)
        stratified.append(max_deviation(data.matrix, split_index(assigned)))
        random.append(max_deviation(data.matrix, random_patient_split(data, (0.8, 0.1, 0.1), seed)))
    assert np.mean(stratified) <= 0.5 * np.mean(random), (stratified, random)
    return float(np.mean(stratified)), float(np.mean(random))


def assert_folds(data: Data, assigned: pd.DataFrame, k: int, tolerance: float) -> None:
    development = assigned["split"] != "test"
    assert assigned.loc[development, "fold"].notna().all()
    assert assigned.loc[~development, "fold"].isna().all()
    assert sorted(assigned.loc[development, "fold"].unique()) == list(range(1, k + 1))
    assert_group_disjoint(data, assigned, "fold")
    sizes = assigned.loc[development, "fold"].value_counts()
    expected = development.sum() / k
    assert (abs(sizes - expected) <= tolerance * expected).all(), sizes.to_dict()


# --- PTB-XL ------------------------------------------------------------------------------------


def test_ptbxl_strat_fold_honoured(ptbxl: Data, tmp_path: Path) -> None:
    result, assigned = ptbxl.run(tmp_path / "out")
    expected = ptbxl.records["strat_fold"].map(lambda f: "train" if f <= 8 else SPLITS[f - 8])
    assert assigned["split"].tolist() == expected.tolist()
    assert assigned["fold"].isna().all()
    assert_group_disjoint(ptbxl, assigned, "split")
    assert result.method == "ptbxl_strat_fold"
    counts = ptbxl.records["strat_fold"].value_counts()
    assert result.counts == {
        "train": int(counts[counts.index <= 8].sum()),
        "val": int(counts[9]),
        "test": int(counts[10]),
    }
    report = json.loads((tmp_path / "out" / "split_report.json").read_text())
    assert report["method"] == "ptbxl_strat_fold" and report["labels"] == ptbxl.names
    val_rows = ptbxl.records["strat_fold"] == 9
    assert report["splits"]["val"]["positives"] == dict(
        zip(ptbxl.names, ptbxl.matrix[val_rows].sum(axis=0).tolist(), strict=True)
    )
    assert result.metrics["n_val"] == counts[9]


def test_ptbxl_folds(ptbxl: Data, tmp_path: Path) -> None:
    # folds=9: the CV folds are PTB-XL's own strat folds 1-9
    _, assigned = ptbxl.run(tmp_path / "nine", folds=9)
    development = ptbxl.records["strat_fold"] <= 9
    assert (
        assigned.loc[development, "fold"].tolist()
        == ptbxl.records.loc[development, "strat_fold"].tolist()
    )
    assert_folds(ptbxl, assigned, 9, tolerance=1.0)  # the data's own (uneven) fold sizes
    # any other K: train + val patients stratified into K folds, the split still strat_fold's
    result, assigned = ptbxl.run(tmp_path / "five", folds=5)
    assert result.method == "ptbxl_strat_fold"
    assert_folds(ptbxl, assigned, 5, tolerance=0.15)


def test_ptbxl_stratified_without_strat_fold(ptbxl: Data, tmp_path: Path) -> None:
    result, assigned = ptbxl.run(tmp_path / "out", use_strat_fold=False)
    assert result.method == "iterative_stratification"
    assert_group_disjoint(ptbxl, assigned, "split")
    assert_stratified(ptbxl, assigned, (0.8, 0.1, 0.1))
    assert_beats_random(ptbxl, tmp_path, use_strat_fold=False)
    _, assigned = ptbxl.run(tmp_path / "folds", use_strat_fold=False, folds=5)
    assert_folds(ptbxl, assigned, 5, tolerance=0.15)


def test_ptbxl_strat_fold_not_patient_disjoint(ptbxl: Data, tmp_path: Path) -> None:
    doctored = tmp_path / "records"
    doctored.mkdir()
    write_manifest(doctored, stage="ingest")  # the tables below change, the folder is complete
    records = pq.read_table(ptbxl.records_dir / "records.parquet").to_pandas()
    rows = np.flatnonzero(records["patient_id"] == "16747")  # 4 records, all in strat fold 10
    assert len(rows) == 4 and set(records.loc[rows, "strat_fold"]) == {10}
    records.loc[rows[1], "strat_fold"] = 3
    pq.write_table(
        pa.Table.from_pandas(records, preserve_index=False), doctored / "records.parquet"
    )
    with pytest.raises(EcgflowError, match=r"not patient-disjoint: 1 patient.*patient 16747"):
        split(SplitParams(), doctored, ptbxl.labels_dir, tmp_path / "out")
    # stratifying by patient instead works, and keeps the patient's records together
    split(SplitParams(use_strat_fold=False), doctored, ptbxl.labels_dir, tmp_path / "out")
    assigned = pd.read_parquet(tmp_path / "out" / "split.parquet")
    assert assigned.loc[rows, "split"].nunique() == 1
    # a strat_fold outside 1..10 is named
    records.loc[rows[1], "strat_fold"] = 11
    pq.write_table(
        pa.Table.from_pandas(records, preserve_index=False), doctored / "records.parquet"
    )
    with pytest.raises(EcgflowError, match=r"strat_fold must be 1\.\.10, found 11"):
        split(SplitParams(), doctored, ptbxl.labels_dir, tmp_path / "out")
    # records without strat_fold: stratified by patient instead of honouring a partial column
    records.loc[rows[1], "strat_fold"] = None
    pq.write_table(
        pa.Table.from_pandas(records, preserve_index=False), doctored / "records.parquet"
    )
    result = split(SplitParams(), doctored, ptbxl.labels_dir, tmp_path / "out")
    assert result.method == "iterative_stratification"


# --- synthetic ---------------------------------------------------------------------------------


def test_synthetic_stratified_by_patient(synthetic: Data, tmp_path: Path) -> None:
    assert synthetic.records["patient_id"].nunique() < len(synthetic.records)  # shared patients
    result, assigned = synthetic.run(tmp_path / "out")
    assert result.method == "iterative_stratification"
    assert_group_disjoint(synthetic, assigned, "split")
    assert_stratified(synthetic, assigned, (0.8, 0.1, 0.1))
    assert assigned["fold"].isna().all()
    assert_beats_random(synthetic, tmp_path)
    report = json.loads((tmp_path / "out" / "split_report.json").read_text())
    subset = split_index(assigned)
    for j, name in enumerate(SPLITS):
        part = report["splits"][name]
        assert part["n_records"] == result.counts[name] == (subset == j).sum()
        patients = synthetic.records.loc[subset == j, "patient_id"].nunique()
        assert part["n_patients"] == patients
    assert report["max_prevalence_deviation"] == pytest.approx(
        {
            name: max_deviation(synthetic.matrix, subset, np.array([i]))
            for i, name in enumerate(synthetic.names)
        },
        abs=1e-6,
    )


def test_synthetic_other_ratios(synthetic: Data, tmp_path: Path) -> None:
    result, assigned = synthetic.run(tmp_path / "out", ratios="0.6,0.4,0")
    assert result.counts["test"] == 0
    assert_stratified(synthetic, assigned, (0.6, 0.4, 0.0))


def test_synthetic_folds(synthetic: Data, tmp_path: Path) -> None:
    _, assigned = synthetic.run(tmp_path / "out", folds=5)
    assert_group_disjoint(synthetic, assigned, "split")
    assert_folds(synthetic, assigned, 5, tolerance=0.10)
    development = (assigned["split"] != "test").to_numpy()
    folds = assigned["fold"].to_numpy()[development]
    assert max_deviation(synthetic.matrix[development], folds) <= PREVALENCE_TOLERANCE
    report = json.loads((tmp_path / "out" / "split_report.json").read_text())
    assert sum(f["n_records"] for f in report["cv_folds"].values()) == development.sum()


def test_deterministic_per_seed(synthetic: Data, tmp_path: Path) -> None:
    synthetic.run(tmp_path / "a", seed=7, folds=3)
    synthetic.run(tmp_path / "b", seed=7, folds=3)
    for name in ("split.parquet", "split_report.json", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    _, first = synthetic.run(tmp_path / "c", seed=7)
    _, other = synthetic.run(tmp_path / "d", seed=8)
    assert (first["split"] != other["split"]).sum() >= 10


def test_outputs_and_manifest(synthetic: Data, tmp_path: Path) -> None:
    result, _ = synthetic.run(tmp_path / "out", seed=3, folds=4)
    schema = pq.read_schema(tmp_path / "out" / "split.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [
        ("record_id", "string"),
        ("split", "string"),
        ("fold", "int32"),
    ]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stage"] == "split"
    assert manifest["inputs"] == {
        "records.parquet": sha256_file(synthetic.records_dir / "records.parquet"),
        "labels.parquet": sha256_file(synthetic.labels_dir / "labels.parquet"),
    }
    assert manifest["params"] == {
        "ratios": [0.8, 0.1, 0.1],
        "folds": 4,
        "seed": 3,
        "use_strat_fold": True,
    }
    assert manifest["counts"] == {**result.counts, "left_out_unlabelled": 0}
    assert set(manifest["files"]) == {"split.parquet", "split_report.json"}
    assert set(result.metrics) >= {"n_train", "n_val", "n_test", "max_prevalence_deviation"}


def test_records_without_patient_are_their_own_group(synthetic: Data, tmp_path: Path) -> None:
    records = pq.read_table(synthetic.records_dir / "records.parquet").to_pandas()
    shared = records["patient_id"].duplicated(keep=False)
    records.loc[shared, "patient_id"] = None  # every multi-record patient loses its id
    doctored = tmp_path / "records"
    doctored.mkdir()
    write_manifest(doctored, stage="ingest")  # the tables below change, the folder is complete
    pq.write_table(
        pa.Table.from_pandas(records, preserve_index=False), doctored / "records.parquet"
    )
    result = split(SplitParams(), doctored, synthetic.labels_dir, tmp_path / "out")
    assert result.report["n_patients"] == len(records)  # one group per record now
    assigned = pd.read_parquet(tmp_path / "out" / "split.parquet")
    # records that shared a patient are now free to land in different splits
    assert assigned.loc[shared.to_numpy(), "split"].nunique() == 3


def test_duplicates_stay_on_the_side_of_their_original(synthetic: Data, tmp_path: Path) -> None:
    """Ingest's ``duplicate_of`` (byte-identical signals) joins a record to its original's group."""
    records = pq.read_table(synthetic.records_dir / "records.parquet").to_pandas()
    first_of_patient = ~records["patient_id"].duplicated()
    originals = records.index[first_of_patient][0::2]
    copies = records.index[first_of_patient][1::2]
    pairs = list(zip(originals, copies, strict=False))  # other patients: free to go anywhere
    for original, copy in pairs:
        records.loc[copy, "duplicate_of"] = records.loc[original, "record_id"]
    doctored = tmp_path / "records"
    doctored.mkdir()
    pq.write_table(
        pa.Table.from_pandas(records, preserve_index=False), doctored / "records.parquet"
    )
    write_manifest(doctored, stage="ingest")
    result = split(SplitParams(), doctored, synthetic.labels_dir, tmp_path / "out")
    assigned = pd.read_parquet(tmp_path / "out" / "split.parquet")
    apart = [(o, c) for o, c in pairs if assigned.loc[o, "split"] != assigned.loc[c, "split"]]
    assert len(pairs) > 50 and apart == []
    assert result.report["n_patients"] == records["patient_id"].nunique() - len(pairs)
    assert_group_disjoint(synthetic, assigned, "split")  # patients stay whole too


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"ratios": (0.8, 0.1, 0.2)}, r"ratios / --ratios: train, val, test must sum to 1"),
        ({"ratios": (1.1, -0.1, 0.0)}, r"ratios / --ratios: each of train, val, test must be"),
        ({"ratios": "0.5,0.5"}, r"ratios\.2 / --ratios: Field required"),
        ({"ratios": "a,b,c"}, r"ratios\.0 / --ratios: "),
        ({"folds": 1}, r"folds / --folds: must be at least 2"),
        ({"seed": -1}, r"seed / --seed: "),
        ({"strata": 3}, r"strata / --strata: Extra inputs"),
    ],
)
def test_bad_params(params: dict, match: str) -> None:
    with pytest.raises(EcgflowError, match=r"invalid split parameters: split\." + match):
        SplitParams(**params)


def test_mismatched_ids(synthetic: Data, tmp_path: Path) -> None:
    ids = synthetic.records["record_id"].tolist()
    # records the label stage dropped (--drop-empty) are left out of the split and counted
    fewer = write_labels(tmp_path / "fewer", ids[3:], synthetic.names, synthetic.matrix[3:])
    result = split(SplitParams(), synthetic.records_dir, fewer, tmp_path / "out")
    written = pd.read_parquet(tmp_path / "out" / "split.parquet")
    assert written["record_id"].tolist() == ids[3:]
    assert sum(result.counts.values()) == len(ids) - 3
    assert result.report["left_out_unlabelled"] == 3
    more = write_labels(
        tmp_path / "more",
        [*ids, "ghost1", "ghost2"],
        synthetic.names,
        np.vstack([synthetic.matrix, np.zeros((2, len(synthetic.names)), int)]),
    )
    with pytest.raises(
        EcgflowError, match=r"2 record\(s\) in .*labels.parquet are not in .*ghost1"
    ):
        split(SplitParams(), synthetic.records_dir, more, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()  # nothing written on error


def test_bad_labels_and_folders(synthetic: Data, tmp_path: Path) -> None:
    ids = synthetic.records["record_id"].tolist()
    matrix = synthetic.matrix.copy()
    matrix[5, 0] = 2
    bad = write_labels(tmp_path / "bad", ids, synthetic.names, matrix)
    with pytest.raises(
        EcgflowError, match=rf"label column '{synthetic.names[0]}' must hold 0 or 1"
    ):
        split(SplitParams(), synthetic.records_dir, bad, tmp_path / "out")
    with pytest.raises(EcgflowError, match=r"labels.parquet: not found \(expected the label"):
        split(SplitParams(), synthetic.records_dir, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(EcgflowError, match=r"output folder .* is the input .*labels_dir"):
        split(SplitParams(), synthetic.records_dir, synthetic.labels_dir, synthetic.labels_dir)
    inside = synthetic.records_dir / "s"
    with pytest.raises(EcgflowError, match=r"output folder .* lies inside the input .*records_d"):
        split(SplitParams(), synthetic.records_dir, synthetic.labels_dir, inside)
    assert not inside.exists()
    short = tmp_path / "short"
    short.mkdir()
    pq.write_table(pa.table({"record_id": ["x"]}), short / "records.parquet")
    with pytest.raises(EcgflowError, match=r"short \(records_dir\) has no manifest\.json"):
        split(SplitParams(), short, synthetic.labels_dir, tmp_path / "out")
    write_manifest(short, stage="ingest")
    with pytest.raises(EcgflowError, match=r"records.parquet: missing column\(s\) 'patient_id'"):
        split(SplitParams(), short, synthetic.labels_dir, tmp_path / "out")
    (short / INCOMPLETE).write_text("a failed run")
    with pytest.raises(EcgflowError, match=rf"short \(records_dir\) is marked {INCOMPLETE}"):
        split(SplitParams(), short, synthetic.labels_dir, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# --- iterative stratification on hand-made inputs ----------------------------------------------


def test_rare_label_spread_over_folds() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((100, 3), dtype=int)
    labels[:60, 0] = 1  # common
    labels[rng.choice(100, 10, replace=False), 1] = 1  # rare: 10 positives
    labels[[3, 50, 70, 90, 99], 2] = 1  # very rare: 5 positives
    for seed in range(5):
        subset = iterative_stratification(labels, [0.2] * 5, np.random.default_rng(seed))
        per_fold = np.stack([labels[subset == j].sum(axis=0) for j in range(5)])
        assert per_fold[:, 2].tolist() == [1, 1, 1, 1, 1]  # one very rare positive per fold
        assert per_fold[:, 1].tolist() == [2, 2, 2, 2, 2]
        assert per_fold[:, 0].tolist() == [12, 12, 12, 12, 12]
        assert np.bincount(subset).tolist() == [20] * 5


def test_proportional_per_label_and_unlabelled_by_size() -> None:
    labels = np.zeros((100, 2), dtype=int)
    labels[:40, 0] = 1
    labels[40:60, 1] = 1  # rows 60..99: no label at all
    subset = iterative_stratification(labels, (0.5, 0.25, 0.25), np.random.default_rng(1))
    assert [labels[subset == j, 0].sum() for j in range(3)] == [20, 10, 10]
    assert [labels[subset == j, 1].sum() for j in range(3)] == [10, 5, 5]
    assert np.bincount(subset).tolist() == [50, 25, 25]


def test_group_sizes_count_in_records_and_zero_ratio_gets_nothing() -> None:
    sizes = np.array([50] + [1] * 50)
    labels = np.zeros((51, 1), dtype=int)
    subset = iterative_stratification(labels, (0.5, 0.5, 0.0), np.random.default_rng(0), sizes)
    records = np.bincount(subset, weights=sizes, minlength=3)
    assert records.tolist() == [50, 50, 0]
    # a group's label vector counts its records: two groups of 2 positives, four of 1
    labels = np.array([[2], [2], [1], [1], [1], [1]])
    subset = iterative_stratification(
        labels, (0.5, 0.5), np.random.default_rng(0), [2, 2, 1, 1, 1, 1]
    )
    assert [labels[subset == j].sum() for j in range(2)] == [4, 4]
    assert sorted(subset[:2].tolist()) == [0, 1]  # the big groups go first, to different sides


def test_seeded_and_grouped() -> None:
    rng = np.random.default_rng(42)
    labels = (rng.random((600, 4)) < [0.5, 0.2, 0.05, 0.3]).astype(int)
    keys = [f"p{i // 3}" for i in range(600)]  # patients of 3 rows
    groups, group_of_row = group_rows(keys)
    assert len(groups) == 200
    first = stratified_group_split(labels, group_of_row, (0.8, 0.1, 0.1), np.random.default_rng(5))
    again = stratified_group_split(labels, group_of_row, (0.8, 0.1, 0.1), np.random.default_rng(5))
    other = stratified_group_split(labels, group_of_row, (0.8, 0.1, 0.1), np.random.default_rng(6))
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    assert pd.Series(first).groupby(group_of_row).nunique().max() == 1  # groups stay whole
    # sizes only break ties in the algorithm: within 2 % of the rows (4 patients) here
    assert np.abs(np.bincount(first) - [480, 60, 60]).max() <= 12
    with pytest.raises(ValueError, match="ratios"):
        iterative_stratification(labels, (-1.0, 2.0), rng)
