"""Registry: register exported models, gated promotion by alias; SQLite and a real server + S3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from datasets import tiny_onnx_export
from mlflow_server import start_mlflow_server

from ecgflow.errors import EcgflowError
from ecgflow.io.synthetic_ecg import synthesize_record
from ecgflow.params.preprocess import PreprocessParams
from ecgflow.registry import (
    CHALLENGER,
    CHAMPION,
    GEM_FILES,
    GEM_NAME,
    promote,
    register,
    register_gem,
)
from ecgflow.serving.bundle import model_kind, resolve_model
from ecgflow.signal.transform import transform_record


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder of a tiny real ONNX model and its side files."""
    labels = ["a", "b", "c"]
    return tiny_onnx_export(
        tmp_path_factory.mktemp("export"),
        labels,
        dict.fromkeys(labels, 0.5),
        {"fs": 100.0, "length_s": 1.0},
    )


def _eval(folder: Path, auroc: float, data_hash: str = "a" * 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"kind": "classifier", "split": "test", "data_hash": data_hash, "n_records": 50,
               "macro_auroc": auroc, "macro_f1": 0.5, "training_run_id": None}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_gated_promotion_on_sqlite(export_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(uri)

    def step(auroc: float, min_delta: float = 0.0, data_hash: str = "a" * 64):
        evaluated = _eval(tmp_path / f"e{auroc}{data_hash[0]}", auroc, data_hash)
        version = register(export_dir, evaluated, pipeline_run="run-1")
        return version, promote(min_delta=min_delta)

    v1, d1 = step(0.80)
    assert d1.promoted and d1.reason == "no champion yet" and v1.uri == "models:/ecg-classifier/1"
    v2, d2 = step(0.85)
    assert d2.promoted and d2.champion_version == "1"
    v3, d3 = step(0.83)
    assert not d3.promoted and "does not beat" in d3.reason
    v4, d4 = step(0.86, min_delta=0.02)
    assert not d4.promoted and "by more than 0.02" in d4.reason
    v5, d5 = step(0.99, data_hash="b" * 64)
    assert not d5.promoted and "different evaluation data" in d5.reason
    assert str(client.get_model_version_by_alias("ecg-classifier", CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias("ecg-classifier", CHALLENGER).version) == "5"
    tags = client.get_model_version("ecg-classifier", "3").tags
    assert tags["promotion.decision"] == "refused" and tags["promotion.compared_to"] == "2"
    assert tags["metric.macro_auroc"] == "0.83" and tags["eval.data_hash"] == "a" * 64
    assert tags["pipeline_run"] == "run-1"
    # the registered model, fed a raw ECG, gives what onnxruntime gives on the exported file
    model = mlflow.pyfunc.load_model(f"models:/ecg-classifier@{CHAMPION}")
    record = synthesize_record(0, fs=500.0, seconds=1.0).record
    x, _ = transform_record(record, PreprocessParams(fs=100.0, length_s=1.0))
    want = ort.InferenceSession(str(export_dir / "model.onnx")).run(None, {"ecg": x[None]})[0]
    got = model.predict({"signal": record.signal.tolist(), "fs": 500.0, "leads": record.leads})
    np.testing.assert_allclose(got[[f"probability_{n}" for n in "abc"]], want, atol=1e-6)
    again = promote(version="2")
    assert not again.promoted and again.reason == "already champion"


def _gem_folder(folder: Path) -> Path:
    """Files shaped like finetune-gem's model folder (the registry only moves them)."""
    for name in GEM_FILES:
        path = folder / name
        if "." in name:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name}\n")
        else:
            path.mkdir(parents=True)
            (path / "part.json").write_text("{}")
    return folder


def _gem_eval(folder: Path, accuracy: float, data_hash: str = "q" * 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"qa_accuracy": accuracy, "qa_balanced_accuracy": 0.5, "n_questions": 88,
               "data_hash": data_hash, "label_prior": {"qa_accuracy": 0.66}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_gem_versions_promote_when_not_worse_and_serve_resolves_them(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    gem = _gem_folder(tmp_path / "gem")

    def step(accuracy: float, data_hash: str = "q" * 64):
        evaluated = _gem_eval(tmp_path / f"e{accuracy}{data_hash[0]}", accuracy, data_hash)
        version = register_gem(gem, evaluated)
        return version, promote(GEM_NAME, metric="qa_accuracy", allow_equal=True)

    v1, d1 = step(0.70)
    assert d1.promoted and v1.uri == "models:/ecg-gem/1"
    _, d2 = step(0.70)
    assert d2.promoted and "not worse" in d2.reason  # a tie is enough for GEM
    _, d3 = step(0.69)
    assert not d3.promoted and "worse than champion 2" in d3.reason
    _, d4 = step(0.90, data_hash="r" * 64)
    assert not d4.promoted and "different evaluation data" in d4.reason
    client = mlflow.MlflowClient(uri)
    tags = client.get_model_version(GEM_NAME, "1").tags
    assert tags["ecgflow.kind"] == "gem" and tags["metric.qa_accuracy"] == "0.7"
    assert tags["metric.prior_qa_accuracy"] == "0.66"
    assert model_kind(f"models:/{GEM_NAME}@{CHAMPION}") == "gem"
    folder, version = resolve_model(f"models:/{GEM_NAME}@{CHAMPION}", tmp_path / "cache")
    assert version == "2"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GEM_FILES)
    with pytest.raises(EcgflowError, match=r"gem\.json: not found"):
        register_gem(tmp_path, _gem_eval(tmp_path / "ok", 0.5))


def test_bad_registry_inputs(export_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(EcgflowError, match=r"metrics\.json: not found"):
        register(export_dir, tmp_path / "none")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "metrics.json").write_text('{"macro_auroc": 0.9}')
    with pytest.raises(EcgflowError, match="data_hash"):
        register(export_dir, tmp_path / "e")
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    (broken / "thresholds.json").unlink()
    with pytest.raises(EcgflowError, match=r"thresholds\.json"):
        register(broken, _eval(tmp_path / "ok", 0.9))
    with pytest.raises(EcgflowError, match="no registered versions"):
        promote("no-such-model")


def test_server_with_s3_artifacts(export_dir: Path, s3_server, tmp_path: Path, monkeypatch):
    import mlflow

    s3 = s3_server.client()
    s3.create_bucket(Bucket="mlflow")
    env = {**s3_server.env(), "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url}
    server = start_mlflow_server(tmp_path, "s3://mlflow/artifacts", env)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        version = register(export_dir, _eval(tmp_path / "eval", 0.9))
        decision = promote()
        assert decision.promoted, server.log_tail()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow").get("Contents", [])]
        assert any(k.endswith("model.onnx") for k in keys), keys
        assert any("pytorch/config.json" in k for k in keys)
        model = mlflow.pyfunc.load_model(f"models:/ecg-classifier@{CHAMPION}")
        record = synthesize_record(0, fs=100.0, seconds=1.0).record
        answer = model.predict(
            {"signal": record.signal.tolist(), "fs": 100.0, "leads": record.leads}
        )
        assert answer.filter(like="probability_").shape == (1, 3)
        assert version.version == "1"
    finally:
        server.stop()
