"""The KServe classifier endpoint: a real ``ecgflow serve`` on 127.0.0.1, called over HTTP.

One module-scoped export of a briefly trained classifier (PTB-XL when ../shared/data is there,
synthetic records otherwise) is served once; the tests call it with KServe's own REST client and
with plain HTTP, and compare with onnxruntime run directly on the same preprocessed input.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import SHARED_DATA
from datasets import tiny_classifier, wfdb_header, wfdb_instance
from servers import free_ports, listening_addresses, start_ecgflow_serve, stop

from ecgflow.io.wfdb_reader import read_wfdb
from ecgflow.params import ExportParams
from ecgflow.signal.transform import PreprocessParams, transform_record
from ecgflow.stages.export import export
from ecgflow.training.data import ShardRows

NAME = "ecg-classifier"
PTBXL = SHARED_DATA / "ptbxl"


@dataclass
class Served:
    """A running ``ecgflow serve`` and what it serves."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    export_dir: Path
    data_dir: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_server(
    model: str, folder: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 90
) -> tuple[str, subprocess.Popen[bytes], Path]:
    """``ecgflow serve`` of the classifier (see :func:`servers.start_ecgflow_serve`)."""
    return start_ecgflow_serve(model, folder, "--name", NAME, *extra, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trained_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(export folder, preprocess output) of a classifier trained for one epoch."""
    root = tmp_path_factory.mktemp("serving")
    classifier, data = tiny_classifier(root, SHARED_DATA)
    export(ExportParams(name=NAME), classifier, root / "export", data_dir=data)
    return root / "export", data


@pytest.fixture(scope="module")
def served(trained_export: tuple[Path, Path], tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("server")
    export_dir, data_dir = trained_export
    url, process, log_path = start_server(str(export_dir), folder, "--max-body-mb", "4")
    yield Served(url, process, log_path, export_dir, data_dir)
    stop(process)


def onnx_direct(export_dir: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(export_dir / "model.onnx"))
    return session.run(None, {"ecg": x.astype(np.float32)})[0]


def params_of(export_dir: Path) -> PreprocessParams:
    info = json.loads((export_dir / "preprocess.json").read_text())
    return PreprocessParams.model_validate(info["params"])


def labels_of(export_dir: Path) -> list[str]:
    return json.loads((export_dir / "thresholds.json").read_text())["labels"]


def test_binds_loopback_only(served: Served) -> None:
    addresses = listening_addresses(served.process.pid)
    assert addresses, served.log_tail()
    assert {host for host, _ in addresses} == {"127.0.0.1"}


def test_v1_and_v2_equal_onnxruntime(served: Served) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    rows = ShardRows(served.data_dir, "test")
    x = np.stack([rows.signal(i) for i in range(4)])
    want = onnx_direct(served.export_dir, x)
    labels = labels_of(served.export_dir)

    async def call() -> tuple[dict[str, Any], Any]:
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            got_v1 = await v1.infer(served.url, {"instances": x.tolist()}, model_name=NAME)
            tensor = InferInput("ecg", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=False)
            got_v2 = await v2.infer(served.url, InferRequest(NAME, [tensor]), model_name=NAME)
        finally:
            await v1.close()
            await v2.close()
        return got_v1, got_v2

    got_v1, got_v2 = asyncio.run(call())
    probabilities = np.array(
        [[p["probabilities"][n] for n in labels] for p in got_v1["predictions"]]
    )
    np.testing.assert_allclose(probabilities, want, atol=1e-6)
    assert got_v1["model_name"] == NAME and got_v1["model_version"].startswith("sha-")
    thresholds = json.loads((served.export_dir / "thresholds.json").read_text())["thresholds"]
    for p in got_v1["predictions"]:
        assert p["positive"] == [n for n in labels if p["probabilities"][n] >= thresholds[n]]
    out = got_v2.get_output_by_name("probabilities")
    np.testing.assert_allclose(out.as_numpy(), want, atol=1e-6)
    assert out.parameters["labels"] == ",".join(labels)
    # kserve's client drops model_version when it parses a response: read the JSON itself
    plain = httpx.post(
        f"{served.url}/v2/models/{NAME}/infer",
        json={"inputs": [{"name": "ecg", "shape": list(x[:1].shape), "datatype": "FP32",
                          "data": x[:1].ravel().tolist()}]},
    ).json()  # fmt: skip
    assert plain["model_version"] == got_v1["model_version"]
    positive = got_v2.get_output_by_name("positive").as_numpy()
    assert [s.decode() if isinstance(s, bytes) else s for s in positive] == [
        ",".join(p["positive"]) for p in got_v1["predictions"]
    ]


def test_real_record_as_wfdb_and_as_raw_signal_agree(served: Served, tmp_path: Path) -> None:
    header = wfdb_header(SHARED_DATA, tmp_path)
    record = read_wfdb(header)
    raw = {"signal": record.signal.tolist(), "fs": record.fs, "leads": record.leads}
    response = httpx.post(
        f"{served.url}/v1/models/{NAME}:predict",
        json={"instances": [wfdb_instance(header), raw]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    by_wfdb, by_raw = response.json()["predictions"]
    labels = labels_of(served.export_dir)
    a = np.array([by_wfdb["probabilities"][n] for n in labels])
    b = np.array([by_raw["probabilities"][n] for n in labels])
    np.testing.assert_allclose(a, b, atol=1e-6)
    # ... and both are the preprocess transform followed by the model
    x, _ = transform_record(record, params_of(served.export_dir))
    np.testing.assert_allclose(a, onnx_direct(served.export_dir, x[None])[0], atol=1e-5)
    assert by_raw["kind"] == "raw" and by_raw["windows"] == 1


@pytest.mark.skipif(not (PTBXL / "records500").is_dir(), reason="needs the 500 Hz PTB-XL files")
def test_raw_signal_at_another_rate_is_resampled_like_preprocess(served: Served) -> None:
    record = read_wfdb(next((PTBXL / "records500").glob("*/*_hr.hea")))
    assert record.fs == 500
    x, _ = transform_record(record, params_of(served.export_dir))
    v2 = {
        "inputs": [
            {
                "name": "signal", "shape": list(record.signal.shape), "datatype": "FP32",
                "data": record.signal.ravel().tolist(),
                "parameters": {"fs": 500, "leads": ",".join(record.leads)},
            }
        ]
    }  # fmt: skip
    response = httpx.post(f"{served.url}/v2/models/{NAME}/infer", json=v2, timeout=30)
    assert response.status_code == 200, response.text
    (out, _) = response.json()["outputs"]
    np.testing.assert_allclose(
        np.array(out["data"]), onnx_direct(served.export_dir, x[None])[0], atol=1e-5
    )


def _signal(seconds: float, fs: float = 100.0, leads: list[str] | None = None) -> dict[str, Any]:
    leads = leads or ["I", "II", "V1"]
    t = np.arange(int(seconds * fs)) / fs
    return {"signal": [np.sin(2 * np.pi * 1.2 * t).tolist()] * len(leads), "fs": fs, "leads": leads}


def _bad_requests(served: Served) -> list[tuple[str, str, Any, int, str]]:
    """(case, path, body, status, fragment of the message)."""
    params = params_of(served.export_dir)
    c, t = len(params.channels), params.n_times
    good = np.zeros((c, t)).tolist()
    v1, v2 = f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/infer"
    wfdb_ok = wfdb_instance(wfdb_header(SHARED_DATA, Path(served.log_path.parent)))["wfdb"]
    header = base64.b64decode(wfdb_ok["header"])
    signal_name = header.split()[0].decode() + ".dat"  # 00001_lr.dat or synth.dat
    signal = base64.b64decode(wfdb_ok["signal"])
    truncated = base64.b64encode(signal[: len(signal) // 3]).decode()
    record_line, rest = header.split(b"\n", 1)
    fields = record_line.split()
    huge_header = b" ".join([*fields[:3], b"10000000", *fields[4:]]) + b"\n" + rest
    huge = f"{int(fields[1]) * 10_000_000:,}"
    nan_body = json.dumps({"instances": [[[float("nan")] * t] * c]})  # json writes NaN
    nan_v2 = json.dumps({"inputs": [{"name": "ecg", "shape": [1, c, t], "datatype": "FP32",
                                     "data": [float("nan")] * (c * t)}]})  # fmt: skip
    return [
        ("no instances", v1, {"inputs": []}, 400, "instances"),
        ("empty instances", v1, {"instances": []}, 400, "non-empty"),
        ("wrong rank", v1, {"instances": [[0.0] * t]}, 400, f"shape [{c}, {t}]"),
        ("wrong shape", v1, {"instances": [np.zeros((c, t - 1)).tolist()]}, 400, f"[{c}, {t}]"),
        ("ragged", v1, {"instances": [[[0.0] * t, [0.0]]]}, 400, "ragged"),
        ("strings", v1, {"instances": [[["a"] * t] * c]}, 400, "numbers expected"),
        ("NaN literal", v1, nan_body, 400, "NaN at line 1, column 18 is not a finite number"),
        ("NaN literal, V2", v2, nan_v2, 400, "NaN at line 1, column 82 is not a finite number"),
        ("Infinity literal", v1, nan_body.replace("NaN", "-Infinity"), 400,
         "-Infinity at line 1, column 18 is not a finite number"),
        ("missing fs", v1, {"instances": [{"signal": [[0.0] * 500], "leads": ["I"]}]}, 400,
         "instances[0].fs: missing"),
        ("zero fs", v1, {"instances": [{**_signal(5), "fs": 0}]}, 400, "fs: must be a number > 0"),
        ("too short", v1, {"instances": [_signal(0.5)]}, 400, "too short"),
        ("too long", v1, {"instances": [_signal(700, fs=50, leads=["I"])]}, 400, "too long"),
        ("unknown lead", v1, {"instances": [_signal(5, leads=["I", "Z9"])]}, 400,
         "unknown lead(s) ['Z9']"),
        ("duplicate lead", v1, {"instances": [_signal(5, leads=["I", "i"])]}, 400,
         "duplicate lead(s) ['I']"),
        ("lead count", v1, {"instances": [{**_signal(5), "leads": ["I"]}]}, 400, "1 rows"),
        ("bad units", v1, {"instances": [{**_signal(5), "units": "mmHg"}]}, 400, "units"),
        ("unknown field", v1, {"instances": [{**_signal(5), "gain": 2}]}, 400, "unknown field"),
        ("too many", v1, {"instances": [[[0.0]]] * 257}, 400, "at most 256"),
        ("body too large", v1, "x" * (5 << 20), 413, "Content Too Large"),
        ("body too large, V2", v2, "x" * (5 << 20), 413, "Content Too Large"),
        ("malformed base64", v1, {"instances": [{"wfdb": {**wfdb_ok, "signal": "%%%"}}]}, 400,
         "signal: malformed base64"),
        ("garbage header", v1,
         {"instances": [{"wfdb": {**wfdb_ok, "header": base64.b64encode(b"\x00junk").decode()}}]},
         400, "header"),
        ("truncated signal", v1,
         {"instances": [{"wfdb": {**wfdb_ok, "signal": truncated}}]}, 400, "instances[0].wfdb"),
        ("missing signal file", v1,
         {"instances": [{"wfdb": {"header": wfdb_ok["header"], "files": {}}}]}, 400, "not sent"),
        ("path in file name", v1,
         {"instances": [{"wfdb": {"header": base64.b64encode(header.replace(
             header.split()[0], b"../x")).decode(), "signal": wfdb_ok["signal"]}}]},
         400, "malformed WFDB header"),
        ("file name with a path", v1,
         {"instances": [{"wfdb": {"header": wfdb_ok["header"],
                                  "files": {signal_name: "", "../../etc/x": ""}}}]},
         400, "not a plain file name"),
        ("malformed JSON", v1, "{not json", 400, "body: not valid JSON"),
        ("malformed JSON, V2", v2, "{not json", 400, "body: not valid JSON"),
        ("not an object", v1, "[1, 2]", 400, "expected a JSON object with 'instances'"),
        ("infinite value", v1, {"instances": [{**_signal(5), "signal": [[1e39] * 500] * 3}]},
         400, "NaN or infinite"),
        ("beyond any ECG", v1, {"instances": [{**_signal(5), "signal": [[1e38] * 500] * 3}]},
         400, "instances[0].signal: 1500 value(s) beyond ±1000 mV"),
        ("beyond any ECG, V2", v2,
         {"inputs": [{"name": "signal", "shape": [1, 500], "datatype": "FP32",
                      "data": [3e5] * 500, "parameters": {"fs": 100, "leads": "I"}}]},
         400, "inputs[signal][0].signal: 500 value(s) beyond ±1000 mV"),
        ("tensor beyond any scale", v1, {"instances": [np.full((c, t), 1e30).tolist()]}, 400,
         f"instances[0]: {c * t} value(s) beyond ±10000"),
        ("too many leads", v1, {"instances": [{"signal": [[0.0]], "fs": 500,
                                               "leads": ["I"] * 100_000}]},
         400, "instances[0].leads: 100000 leads, at most 12"),
        ("too many values", v1, '{"instances": [[' + "0," * 2_010_000 + "0]]}", 400,
         "body: about 2,010,000 values, at most 2,000,000 leads × samples"),
        ("WFDB header over the samples", v1,
         {"instances": [{"wfdb": {**wfdb_ok, "header": base64.b64encode(huge_header).decode()}}]},
         400, f"instances[0].wfdb.header: {huge} leads × samples in this request"),
        ("v2 too many samples", v2,
         {"inputs": [{"name": "ecg", "shape": [300, c, t], "datatype": "FP32", "data": [0.0]}]},
         400, "inputs[ecg].shape: 3,600,000 values, at most 2,000,000"),
        ("boolean fs", v1, {"instances": [{**_signal(5), "fs": True}]}, 400, "fs: must be"),
        ("v2 wrong datatype", v2,
         {"inputs": [{"name": "ecg", "shape": [1, c, t], "datatype": "BOOL",
                      "data": [True] * (c * t)}]}, 400, "datatype"),
        ("v2 shape mismatch", v2,
         {"inputs": [{"name": "ecg", "shape": [1, c, t], "datatype": "FP32", "data": [0.0] * 7}]},
         400, "does not fit shape"),
        ("v2 empty batch", v2,
         {"inputs": [{"name": "ecg", "shape": [0, c, t], "datatype": "FP32", "data": []}]},
         400, "empty tensor"),
        ("v2 two inputs", v2,
         {"inputs": [{"name": "ecg", "shape": [1], "datatype": "FP32", "data": [0.0]}] * 2},
         400, "exactly one"),
        ("v2 wrong rank", v2,
         {"inputs": [{"name": "ecg", "shape": [c, t], "datatype": "FP32",
                      "data": [0.0] * (c * t)}]}, 400, "shape must be [batch"),
        ("v2 unknown input", v2,
         {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.0]}]}, 400,
         "unknown input"),
        ("v2 signal without fs", v2,
         {"inputs": [{"name": "signal", "shape": [1, 500], "datatype": "FP32",
                      "data": [0.0] * 500, "parameters": {"leads": "I"}}]}, 400, "fs: missing"),
        ("v2 wfdb not json", v2,
         {"inputs": [{"name": "wfdb", "shape": [1], "datatype": "BYTES", "data": ["nope"]}]},
         400, "JSON object"),
        ("v2 data missing", v2,
         {"inputs": [{"name": "ecg", "shape": [1, c, t], "datatype": "FP32"}]}, 400,
         "inputs[ecg].data: missing"),
        ("unknown model", "/v1/models/nope:predict", {"instances": [good]}, 404, "nope"),
    ]  # fmt: skip


def test_every_bad_input_gets_a_4xx_naming_it_and_the_server_keeps_serving(served: Served):
    failures = []
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for case, path, body, status, fragment in _bad_requests(served):
            if isinstance(body, str):
                response = client.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
            else:
                response = client.post(path, json=body)
            message = response.text
            if response.status_code != status or fragment not in message:
                failures.append(f"{case}: {response.status_code} {message[:300]}")
            assert client.get("/v2/health/ready").status_code == 200, served.log_tail()
    assert not failures, "\n".join(failures)
    # after all of that, a good request still gets a good answer
    params = params_of(served.export_dir)
    ok = httpx.post(
        f"{served.url}/v1/models/{NAME}:predict",
        json={"instances": [np.zeros((len(params.channels), params.n_times)).tolist()]},
    )
    assert ok.status_code == 200


def test_client_errors_are_logged_without_tracebacks(served: Served) -> None:
    # KServe logs each 400 / 404 at ERROR with a ~2 KB traceback; under a load of bad requests
    # that is most of what the server writes (benchmarks/load.py). Off by default, as access lines.
    params = params_of(served.export_dir)
    good = {"instances": [np.zeros((len(params.channels), params.n_times)).tolist()]}
    before = served.log_path.stat().st_size
    unknown_input = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0.0]}]}
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for _ in range(10):
            empty = client.post(f"/v1/models/{NAME}:predict", json={"instances": []})
            assert empty.status_code == 400
            assert client.post("/v1/models/nope:predict", json=good).status_code == 404
            v2 = client.post(f"/v2/models/{NAME}/infer", json=unknown_input)
            assert v2.status_code == 400
    written = served.log_path.read_bytes()[before:]
    assert b"Traceback" not in written and b"ERROR" not in written, written[:2000]


def test_missing_leads_are_zeroed_and_reported(served: Served) -> None:
    response = httpx.post(
        f"{served.url}/v1/models/{NAME}:predict", json={"instances": [_signal(10)]}, timeout=30
    )
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["n_missing_leads"] == len(params_of(served.export_dir).channels) - 3


def test_health_and_metrics(served: Served) -> None:
    assert httpx.get(f"{served.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{served.url}/v2/models/{NAME}/ready").status_code == 200
    assert httpx.get(f"{served.url}/v1/models/{NAME}").json()["ready"] is True
    metrics = httpx.get(f"{served.url}/metrics").text
    assert "request_predict_seconds" in metrics


def test_eight_concurrent_clients_fifty_requests_each_no_errors(served: Served) -> None:
    params = params_of(served.export_dir)
    body = {"instances": [np.random.default_rng(0).normal(
        size=(len(params.channels), params.n_times)).round(4).tolist()]}  # fmt: skip

    async def client(results: list[int]) -> None:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            for _ in range(50):
                response = await http.post(f"/v1/models/{NAME}:predict", json=body)
                results.append(response.status_code)

    async def main() -> list[int]:
        results: list[int] = []
        await asyncio.gather(*(client(results) for _ in range(8)))
        return results

    results = asyncio.run(main())
    assert len(results) == 400 and set(results) == {200}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow  # ~100 s on 2 cores; benchmarks/load.py and test_load cover memory under load too
def test_resident_memory_does_not_grow_over_2000_requests(served: Served) -> None:
    header = wfdb_header(SHARED_DATA, Path(served.log_path.parent))
    record = read_wfdb(header)
    raw = {"instances": [{"signal": record.signal.tolist(), "fs": record.fs,
                          "leads": record.leads}]}  # fmt: skip
    bad = {"instances": [{"signal": [[0.0] * 10], "fs": 100, "leads": ["I"]}]}
    with httpx.Client(base_url=served.url, timeout=30) as http:

        def burst(n: int) -> None:
            for i in range(n):
                response = http.post(f"/v1/models/{NAME}:predict", json=bad if i % 10 == 0 else raw)
                assert response.status_code == (400 if i % 10 == 0 else 200)

        burst(300)  # warm-up: allocator pools and caches fill
        before = _rss_kib(served.process.pid)
        burst(2000)
        after = _rss_kib(served.process.pid)
    assert after - before < 20 * 1024, f"RSS grew from {before} to {after} KiB"


def test_load_failure_is_never_ready(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "serve", "--model", str(tmp_path / "empty"),
         "--port", str(free_ports(1)[0])],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "model.onnx: not found" in proc.stderr


def test_models_uri_through_mlflow_and_two_workers(
    trained_export: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecgflow.registry import promote, register

    export_dir, _ = trained_export
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(
        json.dumps({"kind": "classifier", "split": "test", "data_hash": "d" * 64,
                    "macro_auroc": 0.8})
    )  # fmt: skip
    version = register(export_dir, evaluation, name=NAME)
    assert promote(NAME).promoted
    url, process, log_path = start_server(
        f"models:/{NAME}@champion", tmp_path, "--workers", "2", env={"MLFLOW_TRACKING_URI": uri}
    )
    try:
        params = params_of(export_dir)
        x = np.random.default_rng(1).normal(size=(3, len(params.channels), params.n_times))
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(6):
                response = http.post(f"/v1/models/{NAME}:predict", json={"instances": x.tolist()})
                assert response.status_code == 200, log_path.read_text()[-3000:]
                bad = http.post(f"/v2/models/{NAME}/infer", content="x" * (65 << 20))
                assert bad.status_code == 413
        body = response.json()
        assert body["model_version"] == version.version == "1"
        labels = labels_of(export_dir)
        got = np.array([[p["probabilities"][n] for n in labels] for p in body["predictions"]])
        np.testing.assert_allclose(got, onnx_direct(export_dir, x), atol=1e-5)
    finally:
        stop(process)


def test_unknown_alias_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecgflow.cli", "serve", "--model", f"models:/{NAME}@champion",
         "--port", str(free_ports(1)[0])],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"models:/{NAME}@champion" in proc.stderr
