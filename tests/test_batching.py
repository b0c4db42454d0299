"""RowBatcher: concurrent requests share model calls, and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from ecgflow.serving.batching import RowBatcher


def _model(calls: list[int], gate: threading.Event | None = None):
    def run(x: np.ndarray) -> np.ndarray:
        if gate is not None:
            gate.wait(5)
        calls.append(len(x))
        return x.sum(axis=(1, 2))[:, None] * np.arange(1, 4)

    return run


def test_concurrent_requests_are_batched_and_answered_with_their_own_rows() -> None:
    calls: list[int] = []
    gate = threading.Event()  # holds the first call so the others queue up behind it
    batcher = RowBatcher(_model(calls, gate), max_rows=32, max_wait_ms=50)
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=(int(rng.integers(1, 4)), 2, 5)) for _ in range(20)]

    async def main() -> list[np.ndarray]:
        tasks = [asyncio.create_task(batcher.submit(x)) for x in requests]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    for x, got in zip(requests, results, strict=True):
        np.testing.assert_allclose(got, x.sum(axis=(1, 2))[:, None] * np.arange(1, 4))
    assert sum(calls) == sum(len(x) for x in requests)
    assert len(calls) < len(requests) / 2, calls  # shared model calls, not one per request
    assert batcher.batches == len(calls)


def test_no_batching_and_large_requests_run_alone() -> None:
    calls: list[int] = []
    alone = RowBatcher(_model(calls), max_rows=1)
    big = RowBatcher(_model(calls), max_rows=4)

    async def main() -> None:
        await asyncio.gather(*(alone.submit(np.ones((1, 2, 5))) for _ in range(5)))
        await big.submit(np.ones((6, 2, 5)))

    asyncio.run(main())
    assert calls == [1, 1, 1, 1, 1, 6]


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    state = {"fail": True}

    def run(x: np.ndarray) -> np.ndarray:
        if state["fail"]:
            raise RuntimeError("model broke")
        return x[:, 0, :1]

    batcher = RowBatcher(run, max_rows=8, max_wait_ms=5)

    async def main() -> np.ndarray:
        with pytest.raises(RuntimeError, match="model broke"):
            await batcher.submit(np.ones((1, 1, 1)))
        state["fail"] = False
        return await batcher.submit(np.full((2, 1, 1), 3.0))

    np.testing.assert_array_equal(asyncio.run(main()), [[3.0], [3.0]])
