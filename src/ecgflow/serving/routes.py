"""ecgflow's own handlers for KServe's inference and metadata paths.

Registered on KServe's FastAPI app before KServe registers its routes, so these answer
``POST /v1/models/NAME:predict``, ``POST /v2/models/NAME[/versions/V]/infer`` and
``GET /v2/models/NAME[/versions/V]``; KServe keeps health, readiness, model lists, metrics and
its exception handlers (400 for :class:`InvalidInput`, 404 for :class:`ModelNotFound`). What
they do differently:

* The body is parsed in a worker thread (``orjson``), never on the event loop, after a cheap
  count of its values against ``max_samples``; the model's own ``preprocess`` decodes off the
  loop too. KServe parses V1 with ``orjson`` and V2 with ``json`` + pydantic on the loop
  (seconds for a large body, during which ``/v2/health/live`` does not answer).
* A body is JSON whatever its Content-Type says (none, ``application/json; charset=utf-8``,
  curl's default ``application/x-www-form-urlencoded``, ``text/plain``); a V2 body is JSON
  unless the ``Inference-Header-Content-Length`` header announces the binary extension. Only
  a type that cannot be JSON (``multipart/form-data``, ``image/png``) is a 415.
* NaN, Infinity and numbers beyond a double get one 400 in V1, V2 and chat, naming line and
  column; other malformed JSON gets a 400 naming the position.
* Binary-extension bodies are checked before anything is decoded: the JSON header's length,
  each input's ``binary_data_size`` against its shape and datatype, and that the sizes add up
  to the body (400 naming the input, not KServe's 500).
* Model metadata comes from the model's ``metadata()`` (platform, versions, inputs, outputs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from kserve import InferInput, InferRequest, InferResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from ecgflow.errors import EcgflowError
from ecgflow.serving.requests import RequestError, off_loop

T = TypeVar("T")
BINARY_HEADER = "inference-header-content-length"
#: datatype → bytes per element in the binary extension (BYTES elements carry their own length)
ITEM_BYTES = {
    "BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2,
    "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BYTES": 0,
}  # fmt: skip
_JSON_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")
_NON_FINITE = re.compile(rb"-?(?:NaN|Infinity|inf|nan)", re.IGNORECASE)
#: extra commas a JSON body may hold beyond one per value (keys, small lists)
_COMMA_SLACK = 4096

_models: dict[str, Any] = {}


def add_inference_routes(app: Any, model: Any) -> None:
    """Serve ``model`` (with ``limits``, and ``metadata()`` if it has one) on ``app``."""
    first = not _models
    _models[model.name] = model
    if not first:
        return
    app.add_api_route("/v1/models/{model_name}:predict", v1_predict, methods=["POST"])
    for path in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
        app.add_api_route(f"{path}/infer", v2_infer, methods=["POST"])
        app.add_api_route(path, v2_metadata, methods=["GET"])


def _model(name: str) -> Any:
    model = _models.get(name)
    if model is None:
        raise ModelNotFound(name)
    if not model.ready:
        raise ModelNotReady(name)
    return model


async def _off_loop(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the decoding thread; :class:`EcgflowError` becomes a 400."""
    try:
        return await off_loop(function, *args)
    except EcgflowError as exc:
        raise InvalidInput(str(exc)) from None


def _json_response(
    content: Any, headers: dict[str, str] | None = None, status: int = 200
) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, media_type="application/json", headers=headers)


async def v1_predict(model_name: str, request: Request) -> Response:
    """``POST /v1/models/NAME:predict``: a JSON body through the model."""
    model = _model(model_name)
    problem = json_type_problem(request.headers.get("content-type"))
    if problem:
        return _json_response({"error": problem}, status=415)
    body = await request.body()
    payload = await _off_loop(parse_json, body, model.limits.max_samples)
    response, headers = await model(payload, headers=dict(request.headers))
    return _json_response(response, headers)


async def v2_infer(model_name: str, request: Request, model_version: str | None = None) -> Response:
    """``POST /v2/models/NAME/infer``: JSON, or the binary extension with its header."""
    model = _model(model_name)
    body = await request.body()
    infer_request = await _off_loop(
        parse_v2, body, request.headers.get(BINARY_HEADER), model_name, model.limits.max_samples
    )
    response, headers = await model(infer_request, headers=dict(request.headers))
    if isinstance(response, InferResponse):
        content, json_size = response.to_rest()
        if json_size is not None:
            headers = {**headers, BINARY_HEADER: str(json_size)}
            return Response(content, media_type="application/octet-stream", headers=headers)
        return _json_response(content, headers)
    return _json_response(response, headers)


async def v2_metadata(model_name: str, model_version: str | None = None) -> Response:
    """``GET /v2/models/NAME``: the model's own metadata (KServe's has no inputs or outputs)."""
    model = _model(model_name)
    metadata = getattr(model, "metadata", None)
    if metadata is None:
        return _json_response(
            {"name": model_name, "versions": None, "platform": "", "inputs": [], "outputs": []}
        )
    return _json_response(metadata())


# --- parsing (worker threads) -----------------------------------------------------------------


def json_type_problem(content_type: str | None) -> str | None:
    """Why a Content-Type cannot be JSON (a 415), or None; parameters are ignored."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _JSON_TYPES or media.endswith("+json") or media == "application/octet-stream":
        return None
    return f"Content-Type {media!r}: the body must be JSON (application/json)"


def parse_json(body: bytes, max_values: int, where: str = "body") -> Any:
    """``body`` as JSON after a count of its values; every problem is a :class:`RequestError`."""
    if not body.strip():
        raise RequestError(f"{where}: empty; send a JSON object")
    values = body.count(b",")
    if values > max_values + _COMMA_SLACK:
        raise RequestError(
            f"{where}: about {values:,} values, at most {max_values:,} leads × samples per "
            f"request (ecgflow serve --limit max_samples=N)"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        token = _NON_FINITE.match(body, max(exc.pos - 1, 0)) or _NON_FINITE.match(body, exc.pos)
        column = exc.colno - (exc.pos - token.start()) if token is not None else exc.colno
        place = f"line {exc.lineno}, column {column}"
        if token is not None or "infinity" in exc.msg:
            text = (token[0] if token is not None else b"a number").decode(errors="replace")
            raise RequestError(
                f"{where}: {text} at {place} is not a finite number; JSON has no NaN or "
                f"Infinity: send finite numbers"
            ) from None
        raise RequestError(f"{where}: not valid JSON ({exc.msg} at {place})") from None


def parse_v2(
    body: bytes, header_length: str | None, model_name: str, max_values: int
) -> InferRequest:
    """An :class:`InferRequest` from a V2 JSON body or a binary-extension body."""
    if header_length is None:
        head = parse_json(body, max_values)
        return _infer_request(head, model_name, body, None, max_values)
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise RequestError(
            f"Inference-Header-Content-Length: {header_length!r} is not a length within the "
            f"body's {len(body):,} bytes"
        )
    head = parse_json(body[:length], max_values, "body (JSON header)")
    return _infer_request(head, model_name, body, length, max_values)


def _infer_request(
    head: Any, model_name: str, body: bytes, offset: int | None, max_values: int
) -> InferRequest:
    """Check a parsed V2 request (and its binary parts when ``offset`` is set) and build it."""
    if not isinstance(head, dict):
        raise RequestError("body: expected a JSON object with 'inputs' (V2)")
    inputs = head.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs: expected a non-empty list of tensors")
    tensors = []
    view = memoryview(body)
    for i, spec in enumerate(inputs):
        tensor, used = _tensor(spec, f"inputs[{i}]", view, offset, max_values)
        tensors.append(tensor)
        if offset is not None:
            offset += used
    if offset is not None and offset != len(body):
        raise RequestError(
            f"body: {len(body) - offset:,} bytes after the JSON header and the inputs' "
            f"binary_data_size bytes; the sizes must add up to the body"
        )
    parameters = head.get("parameters")
    request_id = head.get("id")
    return InferRequest(
        model_name,
        tensors,
        request_id=request_id if isinstance(request_id, str) else None,
        parameters=parameters if isinstance(parameters, dict) else None,
    )


def _tensor(
    spec: Any, where: str, body: memoryview, offset: int | None, max_values: int
) -> tuple[InferInput, int]:
    """One input tensor and the number of binary bytes it takes."""
    if not isinstance(spec, dict):
        raise RequestError(f"{where}: expected an object with name, shape, datatype, data")
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    parameters = spec.get("parameters") or {}
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name: a non-empty string expected")
    where = f"inputs[{name}]"
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise RequestError(f"{where}.shape: a list of non-negative integers expected")
    if datatype not in ITEM_BYTES:
        raise RequestError(f"{where}.datatype: one of {', '.join(ITEM_BYTES)} expected")
    if not isinstance(parameters, dict):
        raise RequestError(f"{where}.parameters: an object expected")
    count = math.prod(shape)
    if count > max_values:
        raise RequestError(
            f"{where}.shape: {count:,} values, at most {max_values:,} leads × samples per "
            f"request (ecgflow serve --limit max_samples=N)"
        )
    tensor = InferInput(name, shape, datatype, parameters=parameters or None)
    if "data" in spec:
        if not isinstance(spec["data"], list):
            raise RequestError(f"{where}.data: a list expected")
        tensor.data = spec["data"]
        return tensor, 0
    size = parameters.get("binary_data_size")
    if offset is None or size is None:
        raise RequestError(
            f"{where}.data: missing (or send it in the binary extension with "
            f"parameters.binary_data_size and the Inference-Header-Content-Length header)"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise RequestError(f"{where}.parameters.binary_data_size: a byte count expected")
    if datatype != "BYTES" and size != count * ITEM_BYTES[datatype]:
        raise RequestError(
            f"{where}.parameters.binary_data_size: {size:,} bytes, but shape {shape} of "
            f"{datatype} takes {count * ITEM_BYTES[datatype]:,}"
        )
    if offset + size > len(body):
        raise RequestError(
            f"{where}.parameters.binary_data_size: {size:,} bytes from byte {offset:,}, but the "
            f"body ends at {len(body):,}"
        )
    raw = body[offset : offset + size]
    tensor._raw_data = bytes(raw) if datatype == "BYTES" else raw
    return tensor, size
