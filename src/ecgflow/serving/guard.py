"""Transport limits in front of KServe's app: timeouts, body size, admission, disconnects.

* :class:`HeaderTimeoutProtocol` (uvicorn's httptools protocol) closes a connection whose
  request line and headers do not arrive within ``header_timeout_s`` (an idle connection too),
  answering 408; without it a half-sent request holds its connection forever.
* :class:`RequestGuard` (ASGI middleware) reads every request body itself before the app
  sees it: 413 over ``max_body_bytes`` (from ``Content-Length`` before reading, or while
  reading), 408 when the body is not complete within ``body_timeout_s``, and a client that
  disconnects mid-body is logged as one line (no ERROR traceback). Requests with a body are
  admitted first-come first-served while at most ``max_concurrent`` run and their bodies add
  up to at most ``max_inflight_mb``, so memory stays bounded however many clients send large
  bodies at once; the others wait with their bodies unread. Requests without a body (health,
  metadata, metrics) are never held back, so liveness answers while the server works.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the uvicorn Config attribute that carries the header timeout into each worker process
HEADER_TIMEOUT_ATTR = "ecgflow_header_timeout_s"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's line and headers."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header deadline as the connection opens (an idle one is closed too)."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """Start the deadline for the next request on a kept-alive connection."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """Headers are in: the body's deadline is :class:`RequestGuard`'s."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        timeout = getattr(self.config, HEADER_TIMEOUT_ATTR, None)
        if timeout and self._header_timer is None:
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow, timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self, timeout: float) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("closed %s: no complete request headers within %g s", client, timeout)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        self.transport.close()


class Admission:
    """First-come first-served admission by request count and body bytes."""

    def __init__(self, slots: int, budget: int) -> None:
        self.slots, self.budget = slots, budget
        self.running, self.bytes = 0, 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _fits(self, weight: int) -> bool:
        return self.running < self.slots and self.bytes + weight <= self.budget

    def _take(self, weight: int) -> None:
        self.running += 1
        self.bytes += weight

    async def acquire(self, weight: int) -> int:
        """Wait for a turn; returns the weight held (at most the whole budget)."""
        weight = max(1, min(weight, self.budget))
        if not self._waiters and self._fits(weight):
            self._take(weight)
            return weight
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((weight, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(weight)  # granted just before the cancel arrived
            else:
                future.cancel()
                self._wake()
            raise
        return weight

    def release(self, weight: int) -> None:
        """Give a turn back and admit whoever now fits, in arrival order."""
        self.running -= 1
        self.bytes -= weight
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            weight, future = self._waiters[0]
            if future.cancelled():
                self._waiters.popleft()
                continue
            if not self._fits(weight):
                return
            self._waiters.popleft()
            self._take(weight)
            future.set_result(None)


class RequestGuard:
    """ASGI middleware: bounded, timed body reads and admission (see the module docstring)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        max_body_bytes: int,
        body_timeout_s: float,
        max_concurrent: int,
        max_inflight_bytes: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.admission = Admission(max_concurrent, max_inflight_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass bodiless requests straight on; read, bound and admit the others first."""
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _answer(send, 400, "Content-Length: not a non-negative integer")
            return
        if declared is not None and declared > self.max_body_bytes:
            await _answer(send, 413, self._too_large(declared))
            return
        weight = await self.admission.acquire(self.max_body_bytes if declared is None else declared)
        try:
            body = await self._read(scope, receive, send, declared)
            if body is None:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.admission.release(weight)

    def _too_large(self, size: int) -> str:
        return (
            f"body: {size:,} bytes, at most {self.max_body_bytes:,} "
            f"(ecgflow serve --max-body-mb); Content Too Large"
        )

    async def _read(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None
    ) -> bytes | None:
        """The whole body, or None after answering 408/413 or seeing the client leave."""
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        log.info(
                            "%s %s: client left after %d of %s body bytes; request dropped",
                            scope["method"], scope["path"], size, declared or "?",
                        )  # fmt: skip
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        await _answer(send, 413, self._too_large(size))
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            log.info(
                "%s %s: body not complete within %g s (%d of %s bytes); answered 408",
                scope["method"], scope["path"], self.body_timeout_s, size, declared or "?",
            )  # fmt: skip
            await _answer(
                send,
                408,
                f"body: {size:,} of {declared or '?'} bytes arrived within "
                f"{self.body_timeout_s:g} s (ecgflow serve --limit body_timeout_s=S)",
            )
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent (chunked), -1 when malformed."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the buffered body, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, message: str) -> None:
    """A JSON error answer that also closes the connection (its body may be unread)."""
    content = orjson.dumps({"error": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
