"""Load: ``ecgflow serve`` under concurrent clients sending a mix of valid and invalid requests.

The classifier is exported as in ``benchmarks/serving.py`` (one epoch of the embedded default on
the shared PTB-XL records, synthetic records without them) and served by a real ``ecgflow serve``
subprocess on 127.0.0.1 (``--max-body-mb 4``). ``--clients`` asyncio clients (16), each with one
persistent HTTP/1.1 connection, send requests back to back for ``--seconds`` (300):

  70 % valid    V1 ``:predict``: preprocessed tensors (batch 1 and 4), raw PTB-XL signals at
                100 Hz (batch 1 and 2) and 500 Hz, WFDB records (base64 files); V2 tensor batch 1
  30 % invalid  malformed JSON (V1, V2), wrong lead count, NaN literal, infinite values, a wrong
                or too high sampling rate, a tensor at the wrong rate, empty instances, too many
                instances, a truncated WFDB file, a V2 shape mismatch, a JSON array, an over-size
                body (413), a wrong content type, an unknown model (404), GET on ``:predict``

Every request's status and latency are kept; any transport error (refused, reset, timed out,
closed mid-response) counts as a dropped connection. The server's resident memory (with any
children) is sampled every second. Results: ``benchmarks/results/load.json`` and ``load.png``
(RSS over time, p50 / p99 per 10-s window). Exit status 1 when any request got a 5xx, was dropped,
or got a status of the wrong class (a valid one not 2xx, an invalid one not 4xx).

Usage: python benchmarks/load.py [--seconds 300] [--clients 16] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import NAME, build_model, free_port, start, stop

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY_MB = 4
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    """One kind of request: its bodies (one is picked per request) and the status expected."""

    name: str
    path: str
    bodies: tuple[bytes, ...]
    valid: bool
    weight: float = 1.0
    expect: int = 200
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


@dataclass
class Sample:
    """One request: start (s since the run began), latency, status (0: dropped), which case."""

    t: float
    ms: float
    status: int
    case: int
    client: int
    error: str = ""


@dataclass
class LoadRun:
    """What :func:`run_load` saw."""

    cases: list[Case]
    samples: list[Sample]
    rss: list[tuple[float, float]]  # (s since the run began, MiB)
    connects: list[int]  # TCP connections opened, per client
    seconds: float


# --- requests ---------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _raw(record: Any) -> dict[str, Any]:
    signal = np.round(record.signal, 4)
    return {"signal": signal.tolist(), "fs": float(record.fs), "leads": list(record.leads)}


def _records(shared: Path | None, rate: int, n: int) -> list[Any]:
    """Real PTB-XL records at ``rate`` Hz when ``shared`` holds them, else synthetic ones."""
    from ecgflow.io.synthetic_ecg import synthesize_record
    from ecgflow.io.wfdb_reader import read_wfdb

    folder = None if shared is None else shared / "ptbxl" / f"records{rate}"
    if folder is not None and folder.is_dir():
        suffix = "lr" if rate == 100 else "hr"
        headers = sorted(folder.glob(f"*/*_{suffix}.hea"))[:n]
        if headers:
            return [read_wfdb(h) for h in headers]
    return [synthesize_record(i, seed=3, fs=rate).record for i in range(n)]


def _wfdb_instances(shared: Path | None, n: int) -> list[dict[str, Any]]:
    """``{"wfdb": {header, signal}}`` of real PTB-XL records (none without the shared data)."""
    folder = None if shared is None else shared / "ptbxl" / "records100"
    if folder is None or not folder.is_dir():
        return []
    out = []
    for header in sorted(folder.glob("*/*_lr.hea"))[:n]:
        files = {"header": header.read_bytes(), "signal": header.with_suffix(".dat").read_bytes()}
        out.append({"wfdb": {k: base64.b64encode(v).decode() for k, v in files.items()}})
    return out


def build_cases(rows: np.ndarray, shared: Path | None, max_body_bytes: int) -> list[Case]:
    """The request mix for a model taking ``rows.shape[1:]`` tensors (see the module docstring).

    ``rows`` are preprocessed test rows; raw signals come from ``shared``'s PTB-XL records when
    present, synthetic records otherwise. Weights are relative within the valid and the invalid
    cases; :func:`run_load` picks valid with probability ``valid_share``.
    """
    v1, v2 = f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/infer"
    c, t = rows.shape[1:]
    x = np.round(rows, 5)
    n = len(x)
    r100, r500 = _records(shared, 100, 8), _records(shared, 500, 4)
    wfdb = _wfdb_instances(shared, 8)
    raw = [_raw(r) for r in r100]

    def v2_tensor(a: np.ndarray) -> bytes:
        tensor = {"name": "ecg", "shape": list(a.shape), "datatype": "FP32"}
        return _dumps({"inputs": [{**tensor, "data": a.ravel().tolist()}]})

    valid = [
        Case("tensor b1", v1, tuple(_dumps({"instances": [x[i].tolist()]}) for i in range(8)), True,
             20),
        Case("tensor b4", v1, tuple(_dumps({"instances": x[(i + np.arange(4)) % n].tolist()})
                                    for i in range(0, 16, 4)), True, 10),
        Case("raw 100 Hz b1", v1, tuple(_dumps({"instances": [r]}) for r in raw), True, 15),
        Case("raw 100 Hz b2", v1, tuple(_dumps({"instances": raw[i : i + 2]})
                                        for i in range(0, len(raw) - 1, 2)), True, 5),
        Case("raw 500 Hz b1", v1, tuple(_dumps({"instances": [_raw(r)]}) for r in r500), True, 4),
        Case("v2 tensor b1", v2, tuple(v2_tensor(x[i : i + 1]) for i in range(4)), True, 8),
    ]  # fmt: skip
    if wfdb:
        valid.append(Case("wfdb b1", v1, tuple(_dumps({"instances": [w]}) for w in wfdb), True, 8))
    one = raw[0]
    truncated = {"wfdb": {**wfdb[0]["wfdb"], "signal": wfdb[0]["wfdb"]["signal"][:400]}} if wfdb \
        else {"wfdb": {"header": "bm90IGEgaGVhZGVy", "signal": ""}}  # fmt: skip

    def bad(name: str, body: bytes | str | Any, expect: int = 400, path: str = v1, **kw) -> Case:
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = _dumps(body)
        return Case(name, path, (body,), False, kw.pop("weight", 1.0), expect, **kw)

    invalid = [
        bad("malformed JSON", "{not json"),
        bad("malformed JSON, V2", "{not json", path=v2),
        bad("wrong lead count", {"instances": [{**one, "leads": one["leads"][:1]}]}),
        bad("NaN literal", json.dumps({"instances": [[[math.nan] * t] * c]})),
        bad("infinite value", {"instances": [{**one, "signal": [[1e39] * 1000] * len(one["leads"])
                                              }]}),
        bad("zero sampling rate", {"instances": [{**one, "fs": 0}]}),
        bad("sampling rate over the limit", {"instances": [{**one, "fs": 50_000}]}),
        bad("tensor at the wrong rate", {"instances": [np.zeros((c, t * 5)).tolist()]}),
        bad("empty instances", {"instances": []}),
        bad("too many instances", {"instances": [[[0.0]]] * 257}),
        bad("truncated WFDB", {"instances": [truncated]}),
        bad("V2 shape mismatch", {"inputs": [{"name": "ecg", "shape": [1, c, t],
                                              "datatype": "FP32", "data": [0.0] * 7}]}, path=v2),
        bad("JSON array", "[1, 2]"),
        bad("over-size body", b"x" * (max_body_bytes + (1 << 20)), 413, weight=0.3),
        bad("not a JSON content type", {"instances": [x[0].tolist()]}, 415,
            headers={"content-type": "multipart/form-data"}),
        bad("unknown model", {"instances": [x[0].tolist()]}, 404,
            path="/v1/models/no-such-model:predict"),
        bad("GET :predict", b"", 404, method="GET", headers={}),
    ]  # fmt: skip
    return valid + invalid


# --- the load ---------------------------------------------------------------------------------


def rss_mib(process: psutil.Process) -> float:
    """Resident memory of ``process`` and its children, MiB."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total / (1 << 20)


def run_load(
    url: str,
    pid: int,
    cases: list[Case],
    seconds: float,
    clients: int = 16,
    valid_share: float = 0.7,
    seed: int = 0,
    timeout_s: float = 60.0,
) -> LoadRun:
    """``clients`` connections sending requests drawn from ``cases`` for ``seconds``."""
    valid = [i for i, case in enumerate(cases) if case.valid]
    invalid = [i for i, case in enumerate(cases) if not case.valid]
    samples: list[Sample] = []
    rss: list[tuple[float, float]] = []
    connects = [0] * clients
    server = psutil.Process(pid)
    done = threading.Event()
    began = time.monotonic()

    def sample_rss() -> None:
        while True:
            rss.append((time.monotonic() - began, rss_mib(server)))
            if done.wait(1.0):
                return

    async def client(k: int, stop_at: float) -> None:
        rng = random.Random(seed * 1000 + k)
        weights = {
            True: [cases[i].weight for i in valid],
            False: [cases[i].weight for i in invalid],
        }

        async def trace(event: str, _info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                connects[k] += 1

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
            while time.monotonic() < stop_at:
                want_valid = rng.random() < valid_share
                pool = valid if want_valid else invalid
                i = rng.choices(pool, weights[want_valid])[0]
                case = cases[i]
                body = rng.choice(case.bodies)
                start_time = time.monotonic()
                status, error = 0, ""
                try:
                    response = await http.request(
                        case.method, case.path, content=body or None, headers=case.headers,
                        extensions={"trace": trace},
                    )  # fmt: skip
                    status = response.status_code
                except httpx.HTTPError as exc:  # any transport error: a dropped connection
                    error = f"{type(exc).__name__}: {exc}"[:200]
                end = time.monotonic()
                samples.append(Sample(start_time - began, (end - start_time) * 1000, status, i, k,
                                      error))  # fmt: skip

    async def main() -> None:
        stop_at = began + seconds
        await asyncio.gather(*(client(k, stop_at) for k in range(clients)))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        asyncio.run(main())
    finally:
        done.set()
        sampler.join()
    return LoadRun(cases, samples, rss, connects, time.monotonic() - began)


# --- summary ----------------------------------------------------------------------------------


def status_class(status: int) -> str:
    return "dropped" if status == 0 else f"{status // 100}xx"


def _pct(ms: list[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50": None, "p99": None}
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def rss_slope(rss: list[tuple[float, float]], warmup_s: float) -> float | None:
    """MiB per minute, least-squares line through the samples after ``warmup_s``."""
    points = [(t / 60, mib) for t, mib in rss if t >= warmup_s]
    if len(points) < 3:
        return None
    t, mib = np.array(points).T
    return float(np.polyfit(t, mib, 1)[0])


def summarize(run: LoadRun, warmup_s: float = 30.0, window_s: float = 10.0) -> dict[str, Any]:
    """Counts by status class and case, latency percentiles, RSS curve and slope, windows."""
    by_class: dict[str, list[float]] = {}
    for s in run.samples:
        by_class.setdefault(status_class(s.status), []).append(s.ms)
    by_case = {}
    wrong = []
    for i, case in enumerate(run.cases):
        mine = [s for s in run.samples if s.case == i]
        statuses: dict[str, int] = {}
        for s in mine:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        by_case[case.name] = {
            "valid": case.valid, "expect": case.expect, "requests": len(mine),
            "statuses": statuses, **_pct([s.ms for s in mine]),
        }  # fmt: skip
        want = "2xx" if case.valid else "4xx"
        wrong += [
            {"case": case.name, "status": s.status, "error": s.error}
            for s in mine
            if s.status and status_class(s.status) != want
        ]
    windows = []
    for w in range(math.ceil(run.seconds / window_s)):
        lo, hi = w * window_s, (w + 1) * window_s
        mine = [s for s in run.samples if lo <= s.t < hi]
        rss_here = [mib for t, mib in run.rss if lo <= t < hi]
        windows.append({
            "t0": lo, "requests": len(mine),
            "2xx": _pct([s.ms for s in mine if 200 <= s.status < 300]),
            "4xx": _pct([s.ms for s in mine if 400 <= s.status < 500]),
            "rss_mib": float(np.median(rss_here)) if rss_here else None,
        })  # fmt: skip
    dropped = [s for s in run.samples if s.status == 0]
    mib = [m for _, m in run.rss]
    return {
        "requests": len(run.samples),
        "requests_per_s": len(run.samples) / run.seconds,
        "counts": {k: len(v) for k, v in sorted(by_class.items())},
        "latency_ms": {k: _pct(v) for k, v in sorted(by_class.items())},
        "dropped": len(dropped),
        "dropped_errors": sorted({s.error for s in dropped})[:20],
        "wrong_class": len(wrong),
        "wrong_class_examples": wrong[:20],
        "tcp_connects": sum(run.connects),
        "clients": len(run.connects),
        "rss_mib": {
            "start": mib[0] if mib else None,
            "end": mib[-1] if mib else None,
            "max": max(mib) if mib else None,
            "slope_mib_per_min": rss_slope(run.rss, warmup_s),
            "warmup_s": warmup_s,
        },
        "rss_curve": [[round(t, 2), round(m, 2)] for t, m in run.rss],
        "windows": windows,
        "by_case": by_case,
    }


def failed(summary: dict[str, Any]) -> bool:
    """Any 5xx, dropped connection or status of the wrong class."""
    return bool(summary["counts"].get("5xx") or summary["dropped"] or summary["wrong_class"])


def summary_line(summary: dict[str, Any]) -> str:
    counts, lat, rss = summary["counts"], summary["latency_ms"], summary["rss_mib"]

    def ms(key: str) -> str:
        p = lat.get(key, {"p50": None})
        return "-" if p["p50"] is None else f"{p['p50']:.1f}/{p['p99']:.1f} ms"

    slope = rss["slope_mib_per_min"]
    return (
        f"{summary['requests']} requests ({summary['requests_per_s']:.1f}/s, "
        f"{summary['clients']} clients, {summary['tcp_connects']} TCP connects): "
        f"2xx {counts.get('2xx', 0)}, 4xx {counts.get('4xx', 0)}, 5xx {counts.get('5xx', 0)}, "
        f"dropped {summary['dropped']}, wrong class {summary['wrong_class']}; "
        f"p50/p99 2xx {ms('2xx')}, 4xx {ms('4xx')}; RSS start {rss['start']:.1f} "
        f"end {rss['end']:.1f} max {rss['max']:.1f} MiB, slope after {rss['warmup_s']:g} s "
        + ("-" if slope is None else f"{slope:+.3f} MiB/min")
    )


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    t, mib = np.array(summary["rss_curve"]).T
    top.plot(t, mib, lw=1)
    slope = summary["rss_mib"]["slope_mib_per_min"]
    title = "server RSS (with children)"
    if slope is not None:
        title += f": {slope:+.3f} MiB/min after {summary['rss_mib']['warmup_s']:g} s"
    top.set(ylabel="MiB", title=title)
    top.grid(alpha=0.3)
    mid = [w["t0"] + 5 for w in summary["windows"]]
    for key, color in (("2xx", "tab:blue"), ("4xx", "tab:orange")):
        for p, style in (("p50", "-"), ("p99", "--")):
            ys = [np.nan if w[key][p] is None else w[key][p] for w in summary["windows"]]
            bottom.plot(mid, ys, style, color=color, label=f"{key} {p}")
    bottom.set(xlabel="s", ylabel="ms per request", yscale="log",
               title="latency per 10-s window")  # fmt: skip
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=30.0, help="s left out of the RSS slope")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load")
    args = parser.parse_args()
    shared = args.data if args.data.is_dir() else None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, rows = build_model(work, None if shared is None else shared / "ptbxl")
        cases = build_cases(rows, shared, MAX_BODY_MB << 20)
        port = free_port()
        command = [sys.executable, "-m", "ecgflow.cli", "serve", "--model", str(model),
                   "--port", str(port), "--max-body-mb", str(MAX_BODY_MB)]  # fmt: skip
        server = start(command, f"http://127.0.0.1:{port}/v2/health/ready", work / "serve.log")
        load_before = os.getloadavg()
        try:
            run = run_load(f"http://127.0.0.1:{port}", server.pid, cases, args.seconds,
                           args.clients)  # fmt: skip
            alive = server.poll() is None
        finally:
            stop(server)
        log = (work / "serve.log").read_text(errors="replace")
    summary = summarize(run, args.warmup)
    summary["server_alive_at_end"] = alive
    summary["server_log_tracebacks"] = log.count("Traceback")
    summary["server_log_bytes"] = len(log.encode())
    summary["machine"] = {
        "cpus": os.cpu_count(), "platform": platform.platform(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "note": "2-core development machine shared with other sessions; client and server on it",
    }  # fmt: skip
    summary["command"] = " ".join(["python", "benchmarks/load.py", *sys.argv[1:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    plot(summary, args.out.with_suffix(".png"))
    for name, case in summary["by_case"].items():
        p50 = "-" if case["p50"] is None else f"{case['p50']:.1f}"
        print(f"  {name:30} {case['requests']:6d}  {case['statuses']}  p50 {p50} ms")
    print(summary_line(summary))
    bad = failed(summary) or not alive
    if bad:
        print("FAILED:", summary["dropped_errors"], summary["wrong_class_examples"][:5])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
