"""GEM generation over HTTP vs in-process: the serving overhead, as a ratio.

Serves a GEM folder with ``ecgflow serve`` on 127.0.0.1 and, interleaved on the same machine,
times for one real record (PTB-XL record 1 from ../shared, else a synthetic WFDB record):

  generate   in-process ``GemModel.generate_ids`` of the question's prompt (with the record's
             evidence lines when the model reads evidence), ``--tokens`` new tokens
  decode     in-process decoding of the same V1 request (WFDB → model input, evidence, image)
  HTTP       the V1 request ``POST /v1/models/ecg-gem:predict`` round trip

and reports the medians and ``HTTP / generate``; the target is HTTP ≤ 1.2 × generate + decode.
``--threads N`` is the server's ``--threads`` and the in-process torch threads alike (0: torch's
default, one per core — what the server used before it set 1); ``generate_default`` is the
in-process time at torch's default as well, interleaved with the rest.
Without ``--model`` it builds a small GEM folder as tests/test_gem_serving.py does (real
SmolLM2-135M, random towers, a non-zero LoRA adapter); ``--image`` gives that model an image
tower, and the request then carries no image (the server renders it from the signal).

Usage: python benchmarks/gem_http.py [--model DIR] [--tokens 16] [--repeats 9] [--threads 1]
                                    [--image]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DESCRIBE = "Describe the findings of this ECG."


def build_model(folder: Path, image: bool) -> Path:
    """A small GEM folder (tests/datasets.py's ``tiny_gem``), with a 128-px image tower if asked."""
    from datasets import tiny_gem

    return tiny_gem(folder, **({"image": True, "image_size": 128} if image else {}))


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def measure(model_dir: Path, tokens: int, repeats: int, threads: int = 1) -> dict[str, Any]:
    """Interleaved in-process and HTTP timings of one generated answer; medians in ms."""
    from conftest import SHARED_DATA
    from datasets import wfdb_header, wfdb_instance
    from servers import start_ecgflow_serve, stop

    from ecgflow.serving.gem import ECGGem
    from ecgflow.text.evidence import with_evidence

    with tempfile.TemporaryDirectory() as scratch:
        header = wfdb_header(SHARED_DATA, Path(scratch))
        body = {
            "instances": [
                {"ecg": wfdb_instance(header), "question": DESCRIBE, "max_new_tokens": tokens}
            ]
        }
        default_threads = torch.get_num_threads()
        local = ECGGem("ecg-gem", str(model_dir), threads=threads)
        local.load()
        threads = torch.get_num_threads()
        gem = local.gem
        (question,) = local.decode_request(body)
        lines = None if question.evidence is None else question.evidence.text()
        prompt = with_evidence(question.text, lines)

        def generate(n_threads: int = threads) -> int:
            torch.set_num_threads(n_threads)
            with torch.no_grad():
                ids = gem.generate_ids(
                    question.signal, [prompt], question.image, max_new_tokens=tokens
                )[0]
            return len(ids)

        url, process, _ = start_ecgflow_serve(
            str(model_dir), Path(scratch), "--max-new-tokens", str(max(tokens, 16)),
            "--threads", str(threads if threads != default_threads else 0), timeout=300,
        )  # fmt: skip
        target = f"{url}/v1/models/ecg-gem:predict"
        times: dict[str, list[float]] = {"generate": [], "decode": [], "http": []}
        if threads != default_threads:
            times["generate_default"] = []
        try:
            with httpx.Client(timeout=300) as client:
                client.post(target, json=body).raise_for_status()  # warm both
                n_tokens = generate()
                for i in range(repeats):
                    steps = [("generate", generate), ("decode", lambda: local.decode_request(body))]
                    if "generate_default" in times:
                        steps.append(("generate_default", lambda: generate(default_threads)))
                    steps.insert(i % 2 * 2, ("http", lambda: client.post(target, json=body)))
                    for name, step in steps:
                        started = time.perf_counter()
                        result = step()
                        times[name].append(time.perf_counter() - started)
                        if name == "http":
                            result.raise_for_status()
                served = client.post(target, json=body).json()["predictions"][0]["answer"]
        finally:
            stop(process)
    medians = {name: _median_ms(values) for name, values in times.items()}
    return {
        "tokens": n_tokens,
        "repeats": repeats,
        "torch_threads": threads,
        "load_1min": os.getloadavg()[0],
        "answer": served,
        **{f"{name}_ms": round(value, 1) for name, value in medians.items()},
        "ratio": round(medians["http"] / medians["generate"], 3),
        "target_ms": round(1.2 * medians["generate"] + medians["decode"], 1),
    }


def main() -> None:
    """Build or take a GEM folder, measure, print one line per figure and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a GEM folder (default: build a small one)")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="server and in-process")
    parser.add_argument("--image", action="store_true", help="built model reads paper images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = args.model or build_model(Path(folder) / "gem", args.image)
        result = measure(model_dir, args.tokens, args.repeats, args.threads)
    print(
        f"generate {result['generate_ms']:.0f} ms ({result['tokens']} tokens), decode "
        f"{result['decode_ms']:.0f} ms, HTTP {result['http_ms']:.0f} ms: HTTP / generate "
        f"{result['ratio']:.2f} (target ≤ 1.2 × generate + decode = {result['target_ms']:.0f} ms)"
        f"; median of {result['repeats']}, {result['torch_threads']} torch threads, "
        f"load {result['load_1min']:.2f}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
