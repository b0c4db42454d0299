"""Run the rows of concurrent requests through the model together.

:class:`RowBatcher` collects the rows that requests submit while a batch is running (up to
``max_rows``; with ``max_wait_ms`` > 0 it also waits that long for more), runs them as one
model call in a worker thread and hands each request its own slice back. With ``max_rows``
<= 1 every request runs on its own, still off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class _Job:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]


class RowBatcher:
    """Micro-batches ``run(rows [N, ...]) -> [N, ...]`` calls from one event loop."""

    def __init__(
        self, run: Callable[[np.ndarray], np.ndarray], max_rows: int = 32, max_wait_ms: float = 0.0
    ) -> None:
        self.run = run
        self.max_rows = max_rows
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # model calls made (for tests and the benchmark)

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """The model's output for ``rows``, computed alone or with other requests' rows."""
        loop = asyncio.get_running_loop()
        if self.max_rows <= 1 or len(rows) >= self.max_rows:
            self.batches += 1
            return await loop.run_in_executor(None, self.run, rows)
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work())
        assert self._queue is not None
        job = _Job(rows, loop.create_future())
        await self._queue.put(job)
        return await job.future

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].rows)
            deadline = loop.time() + self.max_wait
            while size < self.max_rows:
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break  # max_wait 0: take what queued while the last batch ran, no more
                    try:
                        job = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                jobs.append(job)
                size += len(job.rows)
            await self._run(jobs)

    async def _run(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        self.batches += 1
        try:
            out = await loop.run_in_executor(
                None, self.run, np.concatenate([job.rows for job in jobs])
            )
        except Exception as exc:  # every waiting request gets the error, the worker goes on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            if not job.future.done():
                job.future.set_result(out[start:end])
            start = end
