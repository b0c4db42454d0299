"""Serving speed: ``ecgflow serve`` over HTTP vs onnxruntime in-process and a seed-style service.

One exported classifier (the embedded default model, trained for one epoch on the shared PTB-XL
records, or on synthetic records without them) is served three ways, each in its own process:

  floor     onnxruntime ``session.run`` in this process (no HTTP at all)
  seed      a minimal FastAPI + onnxruntime service, as a starter project writes it: a pydantic
            body ``{"instances": list[list[list[float]]]}``, ``np.array``, ``session.run``,
            ``.tolist()``; two routes skip the model and answer a constant, to measure the HTTP
            overhead of a payload: ``/noop`` only reads the body (transport + framework),
            ``/noop-json`` also parses it with orjson (the least any JSON API must do),
            ``/noop-pydantic`` parses it into the pydantic body as ``/predict`` does
  ecgflow   ``ecgflow serve``: V1 JSON, V2 JSON and V2 with the binary tensor extension
            (raw float32 bytes after the JSON header), preprocessed tensor instances

(1) Latency: one client, sequential requests with pre-encoded bodies, batch 1 and batch 32;
    p50 / p99 in ms. Goal: ecgflow p50 <= 1.5 x floor + HTTP overhead, where the overhead is
    ``/noop-json`` or ``/noop-pydantic`` for JSON bodies and ``/noop`` for the binary V2 body.
(2) Throughput: 8 concurrent clients sending batch-1 requests for a fixed time; requests/s.
    ecgflow as served by default (each request alone, one onnxruntime thread per call), with
    micro-batching (``--batch-rows 32``) and with every core per call (``--threads 0``), against
    seed.
    Goal: ecgflow >= 2 x seed.

Usage: python benchmarks/serving.py [--seconds 8] [--data ../shared/data/ptbxl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
from pydantic import BaseModel
from starlette.requests import Request

ROOT = Path(__file__).resolve().parents[1]
NAME = "ecg-classifier"


# --- the seed-style service (run as a subprocess of this file) ---------------------------------


class Instances(BaseModel):
    """The seed service's request body."""

    instances: list[list[list[float]]]


def seed_server(port: int, model: str) -> None:
    """A minimal FastAPI + onnxruntime service, as a starter project writes one."""
    import onnxruntime as ort
    import uvicorn
    from fastapi import FastAPI

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.post("/predict")
    def predict(request: Instances) -> dict:
        x = np.array(request.instances, dtype=np.float32)
        return {"predictions": session.run(None, {"ecg": x})[0].tolist()}

    @app.post("/noop")
    async def noop(request: Request) -> dict:
        await request.body()
        return {"predictions": [[0.0] * 5]}

    @app.post("/noop-pydantic")
    def noop_pydantic(request: Instances) -> dict:
        return {"predictions": [[0.0] * 5 for _ in request.instances]}

    @app.post("/noop-json")
    async def noop_json(request: Request) -> dict:
        orjson.loads(await request.body())
        return {"predictions": [[0.0] * 5]}

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- set-up -----------------------------------------------------------------------------------


def build_model(work: Path, data: Path | None) -> tuple[Path, np.ndarray]:
    """Export the embedded default classifier after one epoch; returns (export dir, test rows)."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    from ecgflow.config import PipelineConfig
    from ecgflow.params import ExportParams
    from ecgflow.stages.export import export
    from ecgflow.stages.finetune_classifier import finetune_classifier
    from ecgflow.stages.ingest import IngestParams, ingest
    from ecgflow.stages.label import LabelParams, label
    from ecgflow.stages.preprocess import PreprocessParams, preprocess
    from ecgflow.stages.split import SplitParams, split
    from ecgflow.training.data import ShardRows

    if data is not None and data.is_dir():
        source, label_set = f"ptbxl:{data}", "ptbxl-superdiagnostic"
    else:
        source, label_set = "synthetic://?n=120&seed=0&fs=100", "synthetic"
    ingest(IngestParams(source=source, limit=120), work / "records")
    label(LabelParams(label_set=label_set), work / "records", work / "labels")
    split(SplitParams(ratios=(0.6, 0.2, 0.2)), work / "records", work / "labels", work / "split")
    preprocess(PreprocessParams(), work / "records", work / "split", work / "data")
    params = PipelineConfig().finetune.model_copy(deep=True)
    params.pretrained = False
    params.train.epochs = 1
    finetune_classifier(params, None, work / "data", work / "labels", work / "clf")
    export(ExportParams(), work / "clf", work / "export", data_dir=work / "data")
    rows = ShardRows(work / "data", "test")
    x = np.stack([rows.signal(i % len(rows)) for i in range(32)]).astype(np.float32)
    return work / "export", x


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], ready_url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{command[:4]} not ready:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


# --- measurements -----------------------------------------------------------------------------


def percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def floor(model: Path, x: np.ndarray, n: int) -> dict[str, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    for _ in range(20):
        session.run(None, {"ecg": x})
    times = []
    for _ in range(n):
        start_time = time.perf_counter()
        session.run(None, {"ecg": x})
        times.append((time.perf_counter() - start_time) * 1000)
    return percentiles(times)


def latency(url: str, body: bytes, n: int, headers: dict[str, str]) -> dict[str, float]:
    with httpx.Client(timeout=60) as client:
        for _ in range(10):
            client.post(url, content=body, headers=headers).raise_for_status()
        times = []
        for _ in range(n):
            start_time = time.perf_counter()
            client.post(url, content=body, headers=headers).raise_for_status()
            times.append((time.perf_counter() - start_time) * 1000)
    return percentiles(times)


def throughput(url: str, body: bytes, seconds: float, clients: int = 8) -> float:
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient, stop_at: float, counts: list[int]) -> None:
        while time.monotonic() < stop_at:
            response = await http.post(url, content=body, headers=headers)
            response.raise_for_status()
            counts.append(1)

    async def main() -> float:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            warm: list[int] = []
            await asyncio.gather(
                *(client(http, time.monotonic() + 1, warm) for _ in range(clients))
            )
            counts: list[int] = []
            began = time.monotonic()
            await asyncio.gather(*(client(http, began + seconds, counts) for _ in range(clients)))
            return len(counts) / (time.monotonic() - began)

    return asyncio.run(main())


def v1_body(x: np.ndarray) -> bytes:
    return json.dumps({"instances": x.tolist()}).encode()


def v2_body(x: np.ndarray) -> bytes:
    tensor = {"name": "ecg", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def v2_binary(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """A V2 request with the binary tensor extension, as kserve's client builds it."""
    from kserve import InferInput, InferRequest

    tensor = InferInput("ecg", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    body, json_length = InferRequest(NAME, [tensor]).to_rest()
    return body, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(json_length),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ptbxl")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--n", type=int, default=200, help="sequential requests for latency")
    parser.add_argument("--seed-server", nargs=2, metavar=("PORT", "MODEL"))
    args = parser.parse_args()
    if args.seed_server:
        seed_server(int(args.seed_server[0]), args.seed_server[1])
        return
    json_headers = {"content-type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, x32 = build_model(work, args.data)
        x1 = x32[:1]
        results: dict[str, dict] = {}
        for batch, x in (("b1", x1), ("b32", x32)):
            results.setdefault("floor", {})[batch] = floor(model, x, args.n)
        seed_port = free_port()
        seed = start(
            [sys.executable, __file__, "--seed-server", str(seed_port), str(model / "model.onnx")],
            f"http://127.0.0.1:{seed_port}/ready",
            work / "seed.log",
        )
        try:
            for batch, x, n in (("b1", x1, args.n), ("b32", x32, max(20, args.n // 5))):
                for route in ("predict", "noop-pydantic", "noop-json", "noop"):
                    url = f"http://127.0.0.1:{seed_port}/{route}"
                    key = {"predict": "seed"}.get(route, route)
                    results.setdefault(key, {})[batch] = latency(url, v1_body(x), n, json_headers)
                binary, headers = v2_binary(x)
                url = f"http://127.0.0.1:{seed_port}/noop"
                results.setdefault("noop_binary", {})[batch] = latency(url, binary, n, headers)
            seed_rps = throughput(
                f"http://127.0.0.1:{seed_port}/predict", v1_body(x1), args.seconds
            )
        finally:
            stop(seed)
        rps: dict[str, float] = {"seed": seed_rps}
        variants = (
            ("ecgflow", []),
            ("ecgflow_batched", ["--batch-rows", "32"]),
            ("ecgflow_all_threads", ["--threads", "0"]),
        )
        for label, extra in variants:
            port = free_port()
            server = start(
                [sys.executable, "-m", "ecgflow.cli", "serve", "--model", str(model),
                 "--port", str(port), *extra],
                f"http://127.0.0.1:{port}/v2/health/ready",
                work / f"{label}.log",
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            try:
                for batch, x, n in (("b1", x1, args.n), ("b32", x32, max(20, args.n // 5))):
                    results.setdefault(f"{label}_v1", {})[batch] = latency(
                        f"{base}/v1/models/{NAME}:predict", v1_body(x), n, json_headers
                    )
                    if label == "ecgflow":
                        url = f"{base}/v2/models/{NAME}/infer"
                        results.setdefault("ecgflow_v2", {})[batch] = latency(
                            url, v2_body(x), n, json_headers
                        )
                        binary, headers = v2_binary(x)
                        results.setdefault("ecgflow_v2_binary", {})[batch] = latency(
                            url, binary, n, headers
                        )
                rps[label] = throughput(
                    f"{base}/v1/models/{NAME}:predict", v1_body(x1), args.seconds
                )
            finally:
                stop(server)
    print("latency, ms (p50 / p99), one client:")
    print(f"{'':22}{'batch 1':>18}{'batch 32':>18}")
    for key, by_batch in results.items():
        cells = "".join(
            f"{by_batch[b]['p50']:>9.2f} /{by_batch[b]['p99']:>7.2f}" for b in ("b1", "b32")
        )
        print(f"{key:22}{cells}")
    for batch in ("b1", "b32"):
        pairs = (
            ("ecgflow_v1", "noop-json"),
            ("ecgflow_v1", "noop-pydantic"),
            ("ecgflow_v2_binary", "noop_binary"),
        )
        for key, noop in pairs:
            goal = 1.5 * results["floor"][batch]["p50"] + results[noop][batch]["p50"]
            got = results[key][batch]["p50"]
            print(
                f"{batch}: {key} p50 {got:.2f} ms vs goal 1.5 x floor + {noop} "
                f"= {goal:.2f} ms ({'met' if got <= goal else 'not met'})"
            )
    print("throughput, requests/s, 8 clients, batch-1 requests:")
    for key, value in rps.items():
        print(f"  {key:18} {value:8.1f}   ({value / rps['seed']:.2f} x seed)")
    print(json.dumps({"latency_ms": results, "requests_per_s": rps}, indent=1))


if __name__ == "__main__":
    main()
