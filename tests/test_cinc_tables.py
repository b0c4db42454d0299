"""PhysioNet/CinC 2020 and 2021 scoring tables: both years' layouts through label and eval.

The 2020 tables are written here in the shape of evaluation-2020's files: ``dx_mapping_scored.csv``
with a ``SNOMED CT Code`` column, ``weights.csv`` listing all 27 scored codes (equivalent codes
as separate rows and columns with equal weights) or, as some copies do, the 24 classes with
``|``-joined equivalents. Records are synthetic WFDB files with ``#Dx:`` / ``# Dx:`` headers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from datasets import train_tiny_classifier

from ecgflow.errors import EcgflowError
from ecgflow.evaluation.challenge import challenge_metric, load_challenge_weights
from ecgflow.io.sources.detect import detect_layout
from ecgflow.io.storage import open_storage
from ecgflow.params import EvalParams
from ecgflow.stages.evaluate import evaluate
from ecgflow.stages.ingest import IngestParams, ingest
from ecgflow.stages.label import LabelParams, label

#: evaluation-2020's dx_mapping_scored.csv rows (Dx, SNOMED CT code, abbreviation), in order.
SCORED_2020 = [
    ("1st degree av block", "270492004", "IAVB"),
    ("atrial fibrillation", "164889003", "AF"),
    ("atrial flutter", "164890007", "AFL"),
    ("bradycardia", "426627000", "Brady"),
    ("complete right bundle branch block", "713427006", "CRBBB"),
    ("incomplete right bundle branch block", "713426002", "IRBBB"),
    ("left anterior fascicular block", "445118002", "LAnFB"),
    ("left axis deviation", "39732003", "LAD"),
    ("left bundle branch block", "164909002", "LBBB"),
    ("low qrs voltages", "251146004", "LQRSV"),
    ("nonspecific intraventricular conduction disorder", "698252002", "NSIVCB"),
    ("pacing rhythm", "10370003", "PR"),
    ("premature atrial contraction", "284470004", "PAC"),
    ("premature ventricular contractions", "427172004", "PVC"),
    ("prolonged pr interval", "164947007", "LPR"),
    ("prolonged qt interval", "111975006", "LQT"),
    ("qwave abnormal", "164917005", "QAb"),
    ("right axis deviation", "47665007", "RAD"),
    ("right bundle branch block", "59118001", "RBBB"),
    ("sinus arrhythmia", "427393009", "SA"),
    ("sinus bradycardia", "426177001", "SB"),
    ("sinus rhythm", "426783006", "NSR"),
    ("sinus tachycardia", "427084000", "STach"),
    ("supraventricular premature beats", "63593006", "SVPB"),
    ("t wave abnormal", "164934002", "TAb"),
    ("t wave inversion", "59931005", "TInv"),
    ("ventricular premature beats", "17338001", "VPB"),
]
#: 2021 adds these (733534002 scored as one class with 164909002).
ADDED_2021 = [
    ("bundle branch block", "6374002", "BBB"),
    ("poor R wave Progression", "365413008", "PRWP"),
    ("complete left bundle branch block", "733534002", "CLBBB"),
]
PAIRS = {"59118001": "713427006", "63593006": "284470004", "17338001": "427172004"}
PAIRS_2021 = PAIRS | {"164909002": "733534002"}
NSR = "426783006"


def _rewards(keys: list[str]) -> dict[str, float]:
    """A made-up, fixed level per class; the reward of a pair is 1 - |difference|."""
    return {key: (int(key) % 13) / 16 for key in keys}


def _write_weights(path: Path, headers: list[str], key: dict[str, str]) -> None:
    """A square weights.csv over ``headers``; ``key`` maps a header to its class's level key."""
    level = _rewards(sorted(set(key.values())))
    values = [[1 - abs(level[key[a]] - level[key[b]]) for b in headers] for a in headers]
    pd.DataFrame(values, index=headers, columns=headers).to_csv(path, float_format="%.4f")


def write_2020_tables(folder: Path, *, joined: bool = False) -> Path:
    """evaluation-2020's dx_mapping_scored.csv and weights.csv in ``folder``; the weights path.

    ``joined``: weights list the 24 classes with ``a|b`` headers instead of the 27 codes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["CPSC", "CPSC-Extra", "StPetersburg", "PTB", "PTB-XL", "Georgia", "Total"]
    rows = []
    for dx, code, abbreviation in SCORED_2020:
        pair = next((p for p in PAIRS.items() if code in p), None)
        note = f"We score {pair[1]} and {pair[0]} as the same diagnosis." if pair else ""
        rows.append([dx, code, abbreviation, *[0] * len(columns), note])
    table = pd.DataFrame(rows, columns=["Dx", "SNOMED CT Code", "Abbreviation", *columns, "Notes"])
    table.to_csv(folder / "dx_mapping_scored.csv", index=False)
    codes = [code for _, code, _ in SCORED_2020]
    key = {code: PAIRS.get(code, code) for code in codes}
    if joined:
        codes = [f"{c}|{o}" if c in PAIRS.values() else c for c in codes for o in _other(c)]
        codes = [c for c in codes if c not in PAIRS]
        key = {c: c.split("|")[0] for c in codes}
    _write_weights(folder / "weights.csv", codes, key)
    return folder / "weights.csv"


def _other(code: str) -> list[str]:
    return [o for o, rep in PAIRS.items() if rep == code] or [""]


def write_2021_tables(folder: Path) -> Path:
    """evaluation-2021-shaped tables (``SNOMEDCTCode``, ``a|b`` weights) with 2020's levels."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(dx, code, abbreviation) for dx, code, abbreviation in SCORED_2020 + ADDED_2021]
    table = pd.DataFrame(rows, columns=["Dx", "SNOMEDCTCode", "Abbreviation"])
    table.to_csv(folder / "dx_mapping_scored.csv", index=False)
    headers = [c for _, c, _ in rows if c not in PAIRS_2021]
    headers = [f"{c}|{o}" if c in PAIRS_2021.values() else c for c in headers for o in _o21(c)]
    # the same level as 2020 for the classes both years score: 2020's key is the 2020 code
    key = {h: ("164909002" if h.startswith("733534002") else h.split("|")[0]) for h in headers}
    _write_weights(folder / "weights.csv", headers, key)
    return folder / "weights.csv"


def _o21(code: str) -> list[str]:
    return [o for o, rep in PAIRS_2021.items() if rep == code] or [""]


def read_table(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, index_col=0)
    table.index = table.index.astype(str)
    return table


# --- weights tables and the metric ------------------------------------------------------------


def test_official_2020_weights_merge_equivalent_codes(tmp_path: Path) -> None:
    official = write_2020_tables(tmp_path / "official")
    joined = write_2020_tables(tmp_path / "joined", joined=True)
    assert len(pd.read_csv(official, index_col=0).columns) == 27
    assert len(pd.read_csv(joined, index_col=0).columns) == 24
    classes, weights = load_challenge_weights(official)
    classes_joined, weights_joined = load_challenge_weights(joined)
    assert len(classes) == 24 and classes == classes_joined
    assert np.array_equal(weights, weights_joined)
    for other, rep in PAIRS.items():
        assert frozenset({rep, other}) in classes
    classes_2021, _ = load_challenge_weights(write_2021_tables(tmp_path / "2021"))
    assert len(classes_2021) == 26 and frozenset({"733534002", "164909002"}) in classes_2021


def test_equivalent_codes_with_unequal_weights_fail_naming_the_file(tmp_path: Path) -> None:
    path = write_2020_tables(tmp_path)
    table = read_table(path)
    table.loc["59118001", "164889003"] = table.loc["164889003", "59118001"] = 0.0
    table.to_csv(path)
    with pytest.raises(EcgflowError, match=r"weights\.csv.*713427006 and 59118001.*identical"):
        load_challenge_weights(path)


def test_merged_pairs_count_once(tmp_path: Path) -> None:
    """CRBBB and RBBB both true, CRBBB alone predicted: one class, so a perfect output."""
    path = write_2020_tables(tmp_path)
    names = ["CRBBB", "RBBB", "AF", "NSR"]
    codes = {"CRBBB": ["713427006"], "RBBB": ["59118001"], "AF": ["164889003"], "NSR": [NSR]}
    targets = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    outputs = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert challenge_metric(targets, outputs, names, path, codes=codes) == pytest.approx(1.0)
    # scored as separate classes (n = 2 for the first record) it would not be perfect
    worse = np.array([[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert challenge_metric(targets, worse, names, path, codes=codes) < 1.0


def test_both_years_tables_give_the_same_score(tmp_path: Path) -> None:
    paths = [
        write_2020_tables(tmp_path / "2020"),
        write_2020_tables(tmp_path / "2020-joined", joined=True),
        write_2021_tables(tmp_path / "2021"),
    ]
    names = ["AF", "RBBB", "PAC", "PVC", "LBBB", "STach", "NSR"]
    codes = {
        "AF": ["164889003"],
        "RBBB": ["713427006", "59118001"],
        "PAC": ["284470004", "63593006"],
        "PVC": ["427172004", "17338001"],
        "LBBB": ["164909002"],  # 2020's LBBB; in 2021's class 733534002|164909002
        "STach": ["427084000"],
        "NSR": [NSR],
    }
    rng = np.random.default_rng(3)
    targets = rng.random((40, len(names))) < 0.3
    outputs = targets ^ (rng.random(targets.shape) < 0.25)
    scores = [challenge_metric(targets, outputs, names, p, codes=codes) for p in paths]
    assert 0.0 < scores[0] < 1.0
    assert scores == pytest.approx([scores[0]] * 3, abs=1e-12)
    with pytest.raises(EcgflowError, match=r"2020/weights\.csv.*\['BBB'\]"):
        challenge_metric(targets, outputs, [*names[:-1], "BBB"], paths[0], codes=codes)


# --- records, label stage ---------------------------------------------------------------------

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
#: record → Dx codes, and the 2020 / 2021 classes they are scored as.
RECORDS = {
    "A0001": ("59118001", {"RBBB"}, {"RBBB"}),
    "A0002": ("713427006,284470004", {"RBBB", "PAC"}, {"RBBB", "PAC"}),
    "A0003": ("63593006,17338001,164889003", {"PAC", "PVC", "AF"}, {"PAC", "PVC", "AF"}),
    "A0004": (NSR, {"NSR"}, {"NSR"}),
    "A0005": ("733534002", set(), {"LBBB"}),
    "A0006": ("6374002,427084000,251146004", {"STach", "LQRSV"}, {"BBB", "STach", "LQRSV"}),
}


def write_records(folder: Path, dx_form: str, codes: dict[str, str], seed: int = 0) -> None:
    """Synthetic 12-lead WFDB records whose headers carry ``<dx_form> <codes>``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, dx in codes.items():
        signal = rng.normal(0, 0.2, (1000, 12))
        comments = ["Age: 60", "Sex: Female", f"Dx: {dx}", "Rx: Unknown"]
        wfdb.wrsamp(name, fs=100, units=["mV"] * 12, sig_name=LEADS, p_signal=signal,
                    fmt=["16"] * 12, comments=comments, write_dir=str(folder))  # fmt: skip
        header = folder / f"{name}.hea"
        text = header.read_text()
        assert "# Dx: " in text
        header.write_text(text.replace("# Dx: ", dx_form))


def label_def(out: Path) -> dict:
    return json.loads((out / "label_def.json").read_text())


def positives(out: Path) -> dict[str, set[str]]:
    names = [entry["name"] for entry in label_def(out)["labels"]]
    labels = pd.read_parquet(out / "labels.parquet").set_index("record_id")
    return {r: {c for c in names if labels.at[r, c] == 1} for r in labels.index}


@pytest.mark.parametrize("dx_form", ["#Dx: ", "# Dx: ", "#Dx : "])
def test_header_forms_and_2020_tables_through_label(dx_form: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_records(source, dx_form, {name: dx for name, (dx, _, _) in RECORDS.items()})
    write_2020_tables(source)
    assert detect_layout(open_storage(str(source))) == "cinc"
    ingest(IngestParams(source=str(source), workers=1), tmp_path / "rec")
    records = pd.read_parquet(tmp_path / "rec" / "records.parquet").set_index("record_id")
    assert {r: ",".join(v) for r, v in records["labels"].items()} == {
        r: dx for r, (dx, _, _) in RECORDS.items()
    }
    label(LabelParams(label_set="cinc2020-scored"), tmp_path / "rec", tmp_path / "l20")
    info = label_def(tmp_path / "l20")["info"]
    assert info["table"] == "raw/weights.csv + raw/dx_mapping_scored.csv"
    assert len(label_def(tmp_path / "l20")["labels"]) == 24
    assert info["equivalent_codes"] == {
        "RBBB": ["713427006", "59118001"],
        "PAC": ["284470004", "63593006"],
        "PVC": ["427172004", "17338001"],
    }
    assert positives(tmp_path / "l20") == {r: s for r, (_, s, _) in RECORDS.items()}
    # 2021 classes from records that carry 2020 tables: the built-in 2021 table, said so
    label(LabelParams(label_set="cinc2021-scored"), tmp_path / "rec", tmp_path / "l21")
    assert (
        label_def(tmp_path / "l21")["info"]["table"]
        == "built-in (raw/weights.csv is the 2020 table)"
    )
    assert positives(tmp_path / "l21") == {r: s for r, (_, _, s) in RECORDS.items()}


def test_tables_of_neither_year_fail_naming_the_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_records(source, "# Dx: ", {"A0001": "59118001"})
    weights = write_2020_tables(source)
    table = read_table(weights)
    table.drop(index="164889003", columns="164889003").to_csv(weights)  # AF no longer scored
    ingest(IngestParams(source=str(source), workers=1), tmp_path / "rec")
    with pytest.raises(EcgflowError, match=r"raw/weights\.csv: .*neither the 2020 nor the 2021"):
        label(LabelParams(label_set="cinc2020-scored"), tmp_path / "rec", tmp_path / "lab")


# --- eval: --challenge-weights ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cinc2020_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier on 40 synthetic CinC records with the 2020 tables in raw/."""
    root = tmp_path_factory.mktemp("cinc2020-eval")
    rng = np.random.default_rng(1)
    pool = [code for _, code, _ in SCORED_2020]
    codes = {f"B{i:04d}": ",".join(rng.choice(pool, 2, replace=False)) for i in range(40)}
    write_records(root / "source", "#Dx: ", codes)
    write_2020_tables(root / "source")
    train_tiny_classifier(root, str(root / "source"), "cinc2020-scored")
    return root


def test_eval_challenge_weights_option(cinc2020_model: Path, tmp_path: Path) -> None:
    root = cinc2020_model
    elsewhere = [
        write_2020_tables(tmp_path / "joined", joined=True),
        write_2021_tables(tmp_path / "2021"),
    ]
    scores, manifests = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        for k, weights in enumerate([None, *elsewhere]):
            params = EvalParams(split="all", bootstrap=0, plots=False, challenge_weights=weights)
            out = tmp_path / f"eval{k}"
            metrics = evaluate(params, root / "clf", root / "data", root / "labels", out,
                               records_dir=root / "records")  # fmt: skip
            expected = weights or root / "records" / "raw" / "weights.csv"
            assert metrics["challenge_weights"] == str(expected)
            scores.append(metrics["challenge_score"])
            manifests.append(json.loads((out / "manifest.json").read_text()))
    assert scores[0] is not None and scores == pytest.approx([scores[0]] * 3, abs=1e-12)
    assert manifests[1]["params"]["challenge_weights"] == str(elsewhere[0])
    assert len({m["inputs"]["challenge_weights"] for m in manifests}) == 3  # three files hashed
    # a weights file whose classes do not cover the labels: exit 2, naming the file
    partial = write_2020_tables(tmp_path / "partial")
    table = read_table(partial)
    table.drop(index="164889003", columns="164889003").to_csv(partial)
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "eval", "--model", str(root / "clf"),
         "--data", str(root / "data"), "--labels", str(root / "labels"), "--split", "all",
         "--out", str(tmp_path / "bad"), "--bootstrap", "0", "--challenge-weights", str(partial)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "partial/weights.csv" in proc.stderr and "'AF'" in proc.stderr
