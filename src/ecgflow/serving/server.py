"""Start KServe's model server for an ecgflow classifier or GEM model (``ecgflow serve``).

Routes are KServe's own: V1 ``/v1/models/NAME:predict``, V2 ``/v2/models/NAME/infer``,
readiness ``/v2/health/ready`` and ``/v2/models/NAME/ready``, liveness ``/v2/health/live``,
Prometheus ``/metrics``. Added here: the REST server binds ``host`` (KServe binds 0.0.0.0,
right in a pod, wrong on a laptop) and closes connections whose headers do not arrive within
``limits.header_timeout_s`` (:class:`~ecgflow.serving.guard.HeaderTimeoutProtocol`), and the
app settings of :mod:`ecgflow.serving.http_app` (body limits and timeouts, admission, ecgflow's
inference and metadata routes, 400/404 logged as one line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ecgflow.serving.guard import HEADER_TIMEOUT_ATTR, HeaderTimeoutProtocol
from ecgflow.serving.http_app import configure_app, log_client_errors_briefly

log = logging.getLogger(__name__)


def serve(
    model: Any,
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int | None = None,
    workers: int = 1,
    access_log: bool = False,
    routes: Callable[[Any], None] | None = None,
) -> None:
    """Load ``model`` and serve it until SIGTERM/SIGINT; ``grpc_port`` None: no gRPC.

    ``model`` is a ``kserve.Model`` with ``limits`` (:class:`ECGClassifier`, :class:`ECGGem`);
    ``routes(app)`` adds routes of its own to KServe's app (GEM's chat completions).

    ``access_log`` keeps uvicorn's line per request and KServe's per-request timing lines;
    off, the same numbers are still in ``/metrics``. A 400/404 is logged as one line, at INFO
    with ``access_log``, else at DEBUG (not shown); KServe logs each with a traceback at ERROR.
    """
    from kserve import ModelServer

    class _Server(ModelServer):
        def setup_event_loop(self) -> None:  # runs after the servers exist, before they bind
            for rest in (self._rest_server, self._rest_multiprocess_server):
                if rest is not None:
                    config = getattr(rest, "config", None) or rest._rest_server.config
                    config.host = host
                    config.http = HeaderTimeoutProtocol
                    setattr(config, HEADER_TIMEOUT_ATTR, model.limits.header_timeout_s)
            super().setup_event_loop()

    model.load()
    configure_app(model)
    if routes is not None:
        from kserve.model_server import app

        routes(app)
    server = _Server(
        http_port=http_port,
        grpc_port=grpc_port or 0,
        enable_grpc=grpc_port is not None,
        workers=workers,
        enable_latency_logging=False,
    )
    if not access_log:  # after ModelServer() set KServe's logging up
        for name in ("uvicorn.access", "kserve.trace"):
            logging.getLogger(name).setLevel(logging.WARNING)
    log_client_errors_briefly(logging.INFO if access_log else logging.DEBUG)
    log.info("serving %s on http://%s:%d", model.name, host, http_port)
    server.start([model])
