"""The registered classifier as an MLflow model: raw ECG in, label-named answers out.

A tiny real ONNX export is registered into a real SQLite MLflow store with ``register``; the
pyfunc (``mlflow.pyfunc.load_model``) and ``mlflow models serve`` (a real server on 127.0.0.1)
are fed raw signals and a WFDB record path, and must give what the preprocess transform plus
onnxruntime give on the exported file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from datasets import tiny_onnx_export, wfdb_header
from servers import free_ports

from ecgflow.io.readers import read_record
from ecgflow.io.synthetic_ecg import synthesize_record
from ecgflow.params.preprocess import PreprocessParams
from ecgflow.registry import CHAMPION, promote, register
from ecgflow.serving.bundle import load_bundle
from ecgflow.signal.transform import transform_record

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["NORM", "MI", "STTC"]
THRESHOLDS = {"NORM": 0.5, "MI": 0.45, "STTC": 0.55}
PREPROCESS = {"fs": 100.0, "length_s": 1.0}
MODEL = f"models:/ecg-classifier@{CHAMPION}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite store holding one registered, champion version; (tracking URI, export dir)."""
    root = tmp_path_factory.mktemp("mlflow-model")
    export = tiny_onnx_export(root / "export", LABELS, THRESHOLDS, PREPROCESS, metadata=True)
    evaluation = root / "eval"
    evaluation.mkdir()
    metrics = {"kind": "classifier", "split": "test", "data_hash": "d" * 64, "macro_auroc": 0.8,
               "ci95": {"macro_auroc": [0.71, 0.87], "macro_f1": [0.4, 0.6]}}  # fmt: skip
    (evaluation / "metrics.json").write_text(json.dumps(metrics))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        register(export, evaluation)
        assert promote().promoted
    return uri, export


def _expected(record, export: Path) -> np.ndarray:
    """Probabilities by the preprocess transform and onnxruntime on the exported file."""
    x, _ = transform_record(record, PreprocessParams.model_validate(PREPROCESS))
    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"ecg": x[None]})[0][0]


def _raw(index: int, fs: float = 500.0) -> tuple[dict, object]:
    record = synthesize_record(index, fs=fs, seconds=2.0).record
    return {"signal": record.signal.tolist(), "fs": fs, "leads": record.leads}, record


def _check(row: pd.Series, want: np.ndarray) -> None:
    got = np.array([row[f"probability_{n}"] for n in LABELS])
    np.testing.assert_allclose(got, want, atol=1e-6)
    decided = [n for n, p in zip(LABELS, want, strict=True) if p >= THRESHOLDS[n]]
    assert [n for n in LABELS if row[f"decision_{n}"]] == decided
    assert row["positive"] == ",".join(decided) and row["windows"] == 1


def test_pyfunc_answers_raw_ecg_by_label(
    store: tuple[str, Path], tmp_path: Path, monkeypatch
) -> None:
    import mlflow

    uri, export = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model(MODEL)
    one, record = _raw(0)
    _check(model.predict(one).iloc[0], _expected(record, export))
    two, other = _raw(1, fs=250.0)  # any rate: resampled as in preprocess
    frame = model.predict(pd.DataFrame([one, two]))
    assert len(frame) == 2
    _check(frame.iloc[1], _expected(other, export))
    header = wfdb_header(ROOT.parent / "shared" / "data", tmp_path)
    from_path = model.predict({"path": str(header)})
    _check(from_path.iloc[0], _expected(read_record(header), export))
    # signature and input example say how to call it
    inputs = model.metadata.get_input_schema().input_names()
    assert {"signal", "fs", "leads", "path"} <= set(inputs)
    outputs = model.metadata.get_output_schema().input_names()
    assert [f"probability_{n}" for n in LABELS] == outputs[: len(LABELS)]
    example = model.input_example
    assert example is not None and len(model.predict(example)) == 1


def test_bad_input_names_the_field(store: tuple[str, Path], monkeypatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    model = mlflow.pyfunc.load_model(MODEL)
    one, _ = _raw(0)
    with pytest.raises(MlflowException, match=r"row 0\.fs"):
        model.predict({**one, "fs": -1.0})
    with pytest.raises(MlflowException, match=r"row 0\.signal: expected \[leads, samples\]"):
        model.predict({**one, "leads": ["I", "II"]})


def test_version_keeps_the_kserve_layout_and_interval_tags(
    store: tuple[str, Path], tmp_path: Path, monkeypatch
) -> None:
    """model.onnx at the version's root, side files in extra_files/: what serving loads."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    client = mlflow.MlflowClient(store[0])
    version = client.get_model_version_by_alias("ecg-classifier", CHAMPION)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/ecg-classifier/{version.version}", dst_path=str(tmp_path)
        )
    )
    assert (folder / "model.onnx").is_file() and (
        folder / "extra_files" / "thresholds.json"
    ).is_file()
    bundle = load_bundle(folder, "ecg-classifier")
    assert bundle.labels == LABELS
    assert version.tags["metric.macro_auroc_ci_low"] == "0.71"
    assert version.tags["metric.macro_auroc_ci_high"] == "0.87"


@pytest.mark.slow  # starts mlflow models serve (~25 s on 2 cores); .ci/run runs it
def test_mlflow_models_serve_answers_raw_ecg(store: tuple[str, Path], tmp_path: Path) -> None:
    """``mlflow models serve -m models:/ecg-classifier@champion`` on 127.0.0.1, fed raw ECG."""
    uri, export = store
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(  # its own group: mlflow execs uvicorn in a child
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
        one, record = _raw(2)
        answer = _post(f"{base}/invocations", {"dataframe_records": [one]})
        (row,) = answer["predictions"]
        _check(pd.Series(row), _expected(record, export))
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(f"{base}/invocations", {"dataframe_records": [{**one, "units": "furlong"}]})
        assert refused.value.code == 400
        assert "row 0.units" in json.loads(refused.value.read())["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_step_runs_nest_under_the_pipeline_run(tmp_path: Path, monkeypatch) -> None:
    """ecgflow run's order: create the pipeline run, steps nest under it, write_and_log ends it."""
    import mlflow

    from ecgflow import tracking
    from ecgflow.step_timing import write_and_log

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    parent = tracking.create_run("ecgflow", "pipeline")
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    step = tracking.start_run("ecgflow", "eval-test")
    tracking.end_run()
    (tmp_path / "run-1").mkdir()
    write_and_log(tmp_path / "run-1", [], 1.0)
    tracking.close_run(parent)  # a finished pipeline run stays finished
    client = mlflow.MlflowClient(uri)
    assert client.get_run(step).data.tags[tracking.PARENT_TAG] == parent
    pipeline = client.get_run(parent)
    assert pipeline.info.status == "FINISHED" and pipeline.data.tags["pipeline_run"] == "run-1"
    assert "pipeline_seconds" in pipeline.data.metrics
    runs = client.search_runs([pipeline.info.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["eval-test", "pipeline"]
    failed = tracking.create_run("ecgflow", "pipeline")
    tracking.close_run(failed)  # a pipeline that failed before write_and_log
    assert client.get_run(failed).info.status == "FAILED"


def test_promotion_can_require_the_lower_bound_to_beat_the_champion(
    store: tuple[str, Path], tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from ecgflow.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    export = store[1]

    def candidate(auroc: float, low: float) -> str:
        folder = tmp_path / f"eval-{auroc}-{low}"
        folder.mkdir()
        metrics = {"kind": "classifier", "split": "test", "data_hash": "d" * 64,
                   "macro_auroc": auroc, "ci95": {"macro_auroc": [low, 0.99]}}  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(metrics))
        return register(export, folder).version

    assert promote(version=candidate(0.80, 0.70), lower_bound=True).promoted  # no champion yet
    wide = candidate(0.85, 0.78)  # better point estimate, but its interval reaches below 0.80
    result = CliRunner().invoke(app, ["promote", "--version", wide, "--lower-bound"])
    assert result.exit_code == 0, result.output
    assert "refused" in result.output and "lower 95 % bound 0.7800 does not beat" in result.output
    assert promote(version=wide).promoted  # the plain gate would have taken it
    sure = candidate(0.90, 0.86)
    decision = promote(version=sure, lower_bound=True)
    assert decision.promoted and "lower 95 % bound 0.8600 beats champion" in decision.reason
