"""Two settings on KServe's FastAPI app that keep bad requests 4xx.

* A body size limit (FastAPI's own ``max_body_size``): a larger body is answered 413 while it
  streams in, never read whole into memory.
* Bodies FastAPI cannot parse (not JSON, or not an Open Inference Protocol request) get a 400
  that says where the problem is, without echoing the body back. FastAPI's default 422 echoes
  the input and fails with a 500 when it holds NaN.
"""

from __future__ import annotations

from typing import Any


async def _unreadable_body(_request: Any, exc: Any) -> Any:
    from fastapi.responses import JSONResponse

    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()[:5]
    )
    return JSONResponse(status_code=400, content={"error": f"malformed request: {problems}"})


def configure_app(max_body_bytes: int) -> None:
    """Apply both settings to ``kserve.model_server.app`` (call before the server starts)."""
    from fastapi.exceptions import RequestValidationError
    from kserve.model_server import app

    app.max_body_size = max_body_bytes
    app.add_exception_handler(RequestValidationError, _unreadable_body)
