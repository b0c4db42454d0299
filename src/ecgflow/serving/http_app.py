"""ecgflow's settings on KServe's FastAPI app that keep bad requests 4xx, and quiet logs for them.

* :class:`~ecgflow.serving.guard.RequestGuard` in front of the app: body size (413), body
  timeout (408), client disconnects as one line, admission by count and bytes.
* ecgflow's inference and metadata routes (:mod:`ecgflow.serving.routes`), ahead of KServe's.
* A body size limit (FastAPI's own ``max_body_size``) behind the guard, for any other route.
* Bodies FastAPI cannot parse (not JSON, or not an Open Inference Protocol request) get a 400
  that says where the problem is, without echoing the body back. FastAPI's default 422 echoes
  the input and fails with a 500 when it holds NaN.
* KServe logs every 400 (``InvalidInput``) and 404 (``ModelNotFound``) it answers at ERROR with
  a full traceback, about 2 KB a bad request (``benchmarks/load.py`` found it).
  :func:`log_client_errors_briefly` turns those into one line at a level of our choosing;
  server errors keep KServe's ERROR and traceback.
"""

from __future__ import annotations

import logging
from typing import Any


async def _unreadable_body(_request: Any, exc: Any) -> Any:
    from fastapi.responses import JSONResponse

    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()[:5]
    )
    return JSONResponse(status_code=400, content={"error": f"malformed request: {problems}"})


def configure_app(model: Any) -> None:
    """Apply the settings for ``model`` (its ``limits``) to ``kserve.model_server.app``.

    Call once per process, before the server starts (a ``--workers`` process imports a fresh app).
    """
    from fastapi.exceptions import RequestValidationError
    from kserve.model_server import app

    from ecgflow.serving.guard import RequestGuard
    from ecgflow.serving.routes import add_inference_routes

    limits = model.limits
    app.max_body_size = limits.max_body_bytes
    app.add_exception_handler(RequestValidationError, _unreadable_body)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=limits.max_body_bytes,
        body_timeout_s=limits.body_timeout_s,
        max_concurrent=limits.max_concurrent,
        max_inflight_bytes=int(limits.max_inflight_mb * (1 << 20)),
    )
    add_inference_routes(app, model)


class _ClientErrorsBriefly(logging.Filter):
    """Rewrites KServe's ERROR + traceback for a client error into one line at ``level``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        from kserve.errors import InvalidInput, ModelNotFound

        self.level = level
        self.statuses: dict[type[BaseException], int] = {InvalidInput: 400, ModelNotFound: 404}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = next((s for t, s in self.statuses.items() if isinstance(exc, t)), None)
        if status is None:
            return True
        record.levelno, record.levelname = self.level, logging.getLevelName(self.level)
        record.msg, record.args = "answered %d: %s", (status, str(exc))
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(self.level)


def log_client_errors_briefly(level: int = logging.DEBUG) -> None:
    """Log KServe's 400/404 answers as one line at ``level`` (call after KServe sets logging up)."""
    from kserve.logging import KSERVE_LOGGER_NAME

    logger = logging.getLogger(KSERVE_LOGGER_NAME)
    for old in [f for f in logger.filters if isinstance(f, _ClientErrorsBriefly)]:
        logger.removeFilter(old)
    logger.addFilter(_ClientErrorsBriefly(level))
