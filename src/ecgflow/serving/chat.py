"""An OpenAI-style chat-completions route for a GEM model, on KServe's own path.

KServe 0.15+ registers ``/openai/v1/...`` only with vllm installed; for a custom model these
routes are added to the model server's FastAPI app here, with OpenAI's request and response
shapes:

``POST /openai/v1/chat/completions``::

    {"model": NAME, "messages": [{"role": "user", "content": [
        {"type": "ecg", "ecg": ECG},                       # as in V1 instances
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},  # optional
        {"type": "text", "text": "Is there baseline drift in lead V1?"}]}],
     "max_tokens": 64, "stream": false}

The question is the text of the last user message; the ECG is the last ``ecg`` part of the
user messages (earlier turns are not fed to the model: GEM answers single-turn). Without an
``image_url`` part a model trained with paper images reads the ECG printed from the signal.
Decoding is greedy (``temperature`` and ``top_p`` are accepted and ignored; ``n`` must be 1). With
``"stream": true`` the answer comes as server-sent events of ``chat.completion.chunk``
objects, then ``data: [DONE]``. A model trained with evidence states it: the answer ends with
"Measured on this ECG:" and the evidence lines (:mod:`ecgflow.text.evidence`), and the
response carries it as ``"evidence": {...}``. ``GET /openai/v1/models`` lists the model.
Errors answer 400 (404 for an unknown model) as ``{"error": {"message", "type", "param"}}``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ecgflow.errors import EcgflowError
from ecgflow.serving.gem import ECGGem, Question
from ecgflow.serving.requests import RequestError, off_loop
from ecgflow.serving.routes import parse_json

CHAT_PATH = "/openai/v1/chat/completions"
MODELS_PATH = "/openai/v1/models"
_IGNORED = {"temperature", "top_p", "user", "seed", "stream_options", "presence_penalty"}
_KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "stream", "n", *_IGNORED}


class ChatError(RequestError):
    """A chat request the server cannot use, with the field (``param``) at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.status = param, status


def add_chat_routes(app: Any, model: ECGGem) -> None:
    """Register the chat-completions and models routes for ``model`` on ``app``."""

    async def chat(request: Request) -> Any:
        try:
            body = await _json_body(request, model)
            question, stream = await off_loop(parse_chat, body, model)
        except ChatError as exc:
            return _error(exc)
        except EcgflowError as exc:  # the ECG, image or question of the message
            return _error(ChatError(str(exc), "messages"))
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if stream:
            events = _stream(model, question, completion_id)
            return StreamingResponse(events, media_type="text/event-stream")
        answer = await model.answer_async(question)
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": answer.text + stated_evidence(answer.evidence),
                        },
                        "finish_reason": answer.finish_reason,
                    }
                ],
                **({} if answer.evidence is None else {"evidence": answer.evidence}),
                "usage": {
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                    "total_tokens": answer.prompt_tokens + answer.completion_tokens,
                },
            }
        )

    async def models() -> Any:
        return {
            "object": "list",
            "data": [{"id": model.name, "object": "model", "owned_by": "ecgflow", "created": 0}],
        }

    app.add_api_route(CHAT_PATH, chat, methods=["POST"])
    app.add_api_route(MODELS_PATH, models, methods=["GET"])


def parse_chat(body: Any, model: ECGGem) -> tuple[Question, bool]:
    """The :class:`Question` of a chat request and whether to stream, or :class:`ChatError`."""
    if not isinstance(body, dict):
        raise ChatError("body: expected a JSON object")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise ChatError(f"unknown fields {unknown}", unknown[0])
    if body.get("model") != model.name:
        raise ChatError(f"model {body.get('model')!r} is not served here", "model", 404)
    if body.get("n", 1) != 1:
        raise ChatError("n: only 1 choice is supported", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ChatError("stream: true or false expected", "stream")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatError("messages: a non-empty list expected", "messages")
    text, ecg, image = None, None, None
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
        ):
            raise ChatError(f"{where}: an object with role system, user or assistant", where)
        if message["role"] != "user":
            continue
        parts = _parts(message.get("content"), f"{where}.content")
        texts = [p["text"] for p in parts if p["type"] == "text"]
        text = "\n".join(texts) if texts else text
        for k, part in enumerate(parts):
            if part["type"] == "ecg":
                ecg = (part.get("ecg"), f"{where}.content[{k}].ecg")
            elif part["type"] == "image_url":
                url = (part.get("image_url") or {}).get("url")
                image = (url, f"{where}.content[{k}].image_url.url")
    if ecg is None:
        raise ChatError("messages: no user message has an {'type': 'ecg'} content part", "messages")
    signal, info = model.decode_ecg_info(ecg[0], ecg[1])
    url, where = image or (None, "messages: image_url")
    question = Question(
        signal=signal,
        evidence=model.measure_evidence(signal),
        image=model.image_for(url, where, signal, info),
        text=model.check_question(text, "messages: the last user message's text"),
        max_new_tokens=model.check_new_tokens(limit, "max_tokens"),
    )
    return question, stream


def stated_evidence(evidence: dict[str, Any] | None) -> str:
    """The evidence paragraph a chat answer ends with ("" when the model reads none)."""
    if not evidence or not evidence.get("text"):
        return ""
    return "\n\nMeasured on this ECG:\n" + str(evidence["text"])


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ChatError(f"{where}: a string or a list of content parts expected", where)
    parts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "ecg", "image_url"):
            raise ChatError(f"{where}[{k}]: type must be text, ecg or image_url", where)
        if kind == "text" and not isinstance(part.get("text"), str):
            raise ChatError(f"{where}[{k}].text: a string expected", where)
        parts.append(part)
    return parts


async def _json_body(request: Any, model: ECGGem) -> Any:
    raw = await request.body()
    try:
        return await off_loop(parse_json, raw, model.limits.max_samples)
    except RequestError as exc:
        raise ChatError(str(exc)) from None


def _error(exc: ChatError) -> JSONResponse:
    kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
    payload = {"error": {"message": str(exc), "type": kind, "param": exc.param}}
    return JSONResponse(status_code=exc.status, content=payload)


async def _stream(model: ECGGem, question: Question, completion_id: str) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, content chunks, the finish chunk, ``[DONE]``."""
    from transformers import TextIteratorStreamer

    class _Streamer(TextIteratorStreamer):
        def put_text(self, text: str) -> None:
            self.on_finalized_text(text, stream_end=True)

    timeout = model.gem_limits.timeout_s + 30
    streamer = _Streamer(
        model.gem.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout
    )
    loop = asyncio.get_running_loop()

    def run() -> Any:
        try:
            return model.answer(question, streamer)
        finally:
            streamer.end()

    future = asyncio.ensure_future(model.in_model_thread(run))
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant"})
    pieces = iter(streamer)
    while True:
        piece = await loop.run_in_executor(None, next, pieces, None)
        if piece is None:
            break
        if piece:
            yield chunk({"content": piece})
    answer = await future
    if answer.evidence is not None:
        yield chunk({"content": stated_evidence(answer.evidence)})
    yield chunk({}, answer.finish_reason)
    yield "data: [DONE]\n\n"
