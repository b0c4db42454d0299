"""The load benchmark's machinery, short: ``benchmarks/load.py`` against a real ``ecgflow serve``.

16 clients on persistent connections send the benchmark's mix of valid and invalid requests for
about 20 s; no request may get a 5xx or lose its connection, every valid one gets a 2xx and every
invalid one a 4xx. (The 5-minute run with the memory curve is ``python benchmarks/load.py``.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA
from datasets import tiny_classifier
from servers import start_ecgflow_serve, stop

from ecgflow.params import ExportParams
from ecgflow.stages.export import export
from ecgflow.training.data import ShardRows

pytestmark = pytest.mark.slow


def _load_module():
    spec = importlib.util.spec_from_file_location("load_benchmark", ROOT / "benchmarks" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_sixteen_clients_mixed_requests_no_5xx_no_drops(tmp_path: Path) -> None:
    load = _load_module()
    classifier, data = tiny_classifier(tmp_path, SHARED_DATA)
    export(ExportParams(name=load.NAME), classifier, tmp_path / "export", data_dir=data)
    rows = ShardRows(data, "test")
    x = np.stack([rows.signal(i % len(rows)) for i in range(16)]).astype(np.float32)
    shared = SHARED_DATA if SHARED_DATA.is_dir() else None
    cases = load.build_cases(x, shared, load.MAX_BODY_MB << 20)
    url, process, log_path = start_ecgflow_serve(
        str(tmp_path / "export"), tmp_path, "--name", load.NAME,
        "--max-body-mb", str(load.MAX_BODY_MB),
    )  # fmt: skip
    try:
        run = load.run_load(url, process.pid, cases, seconds=20, clients=16)
        assert process.poll() is None, log_path.read_text()[-3000:]
    finally:
        stop(process)
    summary = load.summarize(run, warmup_s=5)
    line = load.summary_line(summary)
    assert summary["counts"].get("5xx", 0) == 0, line
    assert summary["dropped"] == 0, summary["dropped_errors"]
    assert summary["wrong_class"] == 0, summary["wrong_class_examples"]
    assert not load.failed(summary)
    # every client ran, and the mix reached every case: each invalid kind got its 4xx
    assert len({s.client for s in run.samples}) == 16
    for name, case in summary["by_case"].items():
        assert case["requests"] > 0, f"{name} never sent: {line}"
        if not case["valid"]:
            assert set(case["statuses"]) == {str(case["expect"])}, (name, case["statuses"])
    assert summary["rss_curve"] and summary["rss_mib"]["max"] > 0
