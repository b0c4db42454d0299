"""The KServe model behind ``ecgflow serve`` for a GEM folder: an ECG and a question in, text out.

V1 (``POST /v1/models/NAME:predict``)::

    {"instances": [{"ecg": ECG, "image": B64_PNG?, "question": "...",
                    "max_new_tokens": N?, "candidates": ["yes", "no"]?}]}
    → {"predictions": [{"answer": "...", "finish_reason": "stop" | "length",
                        "model": NAME, "version": V}], "model_name": ..., "model_version": ...}

``ECG`` is any instance form of :mod:`ecgflow.serving.requests` — a raw signal
``{"signal": [[...]], "fs": HZ, "leads": [...]}``, a base64 WFDB record ``{"wfdb": {...}}`` or
a preprocessed ``[C, T]`` tensor — prepared with the model's own ``preprocess.json``. A model
trained with evidence (``evidence.json``) reads the ECG's measured evidence after ``<ecg>``
(:mod:`ecgflow.text.evidence`) and each prediction carries it as ``"evidence": {...}``. With
``candidates`` the answer is the most likely candidate (closed set, as eval-gem scores);
otherwise it is generated greedily (an open question such as "Describe the findings of this
ECG" gets a generated interpretation: it never starts with yes or no, see
:func:`is_open_question`), at most ``max_new_tokens`` tokens and ``timeout_s`` seconds. A
model trained with paper images reads ``image`` when given, else the ECG printed by the
project's own renderer (:func:`ecgflow.render.paper.render_paper`, as render-images does).

The model runs in one dedicated thread with ``threads`` torch threads (default 1): with two
intra-op threads on a 2-core machine that anything else also uses, a 16-token answer took
1.4–36 s (OpenMP threads waiting for each other at every op), with one a steady 1.4 s
(docs/performance.md#gem-over-http). The OpenAI-style chat route is in
:mod:`ecgflow.serving.chat`. Bad requests raise :class:`kserve.errors.InvalidInput` (HTTP 400)
naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kserve import Model
from kserve.errors import InvalidInput

from ecgflow.artifacts import GEM_TOWERS, PREPROCESS_JSON
from ecgflow.errors import EcgflowError
from ecgflow.serving.bundle import resolve_model
from ecgflow.serving.limits import GemLimits, ServingLimits
from ecgflow.serving.requests import RequestError, SampleBudget, decode_instance, off_loop
from ecgflow.signal.transform import PreprocessParams

log = logging.getLogger(__name__)


@dataclass
class Question:
    """One decoded question: the model's input rows and what to do with them."""

    signal: torch.Tensor  # [1, C, T]
    image: torch.Tensor | None  # [1, 1, H, W]
    text: str
    max_new_tokens: int
    candidates: list[str] | None = None
    evidence: Any = None  # ecgflow.text.evidence.RecordEvidence, when the model reads evidence


@dataclass
class Answer:
    """The model's answer with its token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    evidence: dict[str, Any] | None = None  # what the prompt stated (RecordEvidence.to_json)


class ECGGem(Model):
    """A GEM model folder (or registered version) as a KServe model."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        limits: ServingLimits | None = None,
        gem_limits: GemLimits | None = None,
        cache_dir: Path | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.limits = limits or ServingLimits()
        self.gem_limits = gem_limits or GemLimits()
        self.cache_dir = cache_dir
        self.gem: Any = None
        self.preprocess_params: PreprocessParams | None = None
        self.version: str | None = None
        self.threads = threads
        self._lock = threading.Lock()  # one generation at a time: the cores are shared anyway
        self._runner: ThreadPoolExecutor | None = None

    def load(self) -> bool:
        """Resolve and open the GEM folder; raises :class:`EcgflowError` when it cannot."""
        from ecgflow.models.gem_io import load_gem

        folder, version = resolve_model(self.model_uri, self.cache_dir)
        path = folder / PREPROCESS_JSON
        try:
            params = json.loads(path.read_text(encoding="utf-8"))["params"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EcgflowError(f"{path}: unreadable ({exc}); is {folder} a GEM model?") from None
        self.preprocess_params = PreprocessParams.model_validate(params)
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        self.gem = load_gem(folder)
        self.version = version or _short_hash(folder / GEM_TOWERS)
        self.ready = True
        log.info("GEM model %s version %s ready", self.name, self.version)
        return self.ready

    def validate(self, payload: Any) -> Any:
        """Requests are checked by :meth:`preprocess`, field by field."""
        return payload

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata: GEM answers V1 predict and chat, so it lists no V2 tensors."""
        return {
            "name": self.name,
            "versions": [self.version] if self.version else None,
            "platform": "ecgflow_gem",
            "inputs": [],
            "outputs": [],
        }

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Decode V1 instances into questions in a worker thread (400 naming a bad field)."""
        return await off_loop(self.decode_request, payload)

    def decode_request(self, payload: Any) -> list[Question]:
        """The questions of a V1 body (blocking), or :class:`InvalidInput`."""
        try:
            if not isinstance(payload, dict) or "instances" not in payload:
                raise RequestError("body: expected a JSON object with 'instances' (V1)")
            instances = payload["instances"]
            if not isinstance(instances, list) or not instances:
                raise RequestError("instances: expected a non-empty list")
            if len(instances) > self.gem_limits.max_instances:
                raise RequestError(
                    f"instances: {len(instances)} questions, at most "
                    f"{self.gem_limits.max_instances} per request"
                )
            budget = SampleBudget(self.limits.max_samples)  # all questions' ECGs together
            return [
                self.decode(inst, f"instances[{i}]", budget) for i, inst in enumerate(instances)
            ]
        except EcgflowError as exc:
            raise InvalidInput(str(exc)) from None

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Answer every question (off the event loop, one generation at a time)."""
        return [await self.answer_async(q) for q in payload]

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None) -> Any:
        """V1 response."""
        return {
            "predictions": [
                {
                    "answer": a.text,
                    "finish_reason": a.finish_reason,
                    "model": self.name,
                    "version": self.version,
                    **({} if a.evidence is None else {"evidence": a.evidence}),
                }
                for a in result
            ],
            "model_name": self.name,
            "model_version": self.version,
        }

    # --- decoding ------------------------------------------------------------------------------

    def decode(self, instance: Any, where: str, budget: SampleBudget | None = None) -> Question:
        """One V1 instance → :class:`Question`, or :class:`RequestError` naming the field."""
        if not isinstance(instance, dict):
            raise RequestError(f"{where}: expected an object with 'ecg' and 'question'")
        unknown = sorted(
            set(instance) - {"ecg", "image", "question", "max_new_tokens", "candidates"}
        )
        if unknown:
            raise RequestError(f"{where}: unknown fields {unknown}")
        if "ecg" not in instance:
            raise RequestError(f"{where}.ecg: missing (a raw signal, WFDB record or tensor)")
        signal, info = self.decode_ecg_info(instance["ecg"], f"{where}.ecg", budget)
        return Question(
            signal=signal,
            evidence=self.measure_evidence(signal),
            image=self.image_for(instance.get("image"), f"{where}.image", signal, info),
            text=self.check_question(instance.get("question"), f"{where}.question"),
            max_new_tokens=self.check_new_tokens(
                instance.get("max_new_tokens"), f"{where}.max_new_tokens"
            ),
            candidates=self._candidates(instance.get("candidates"), f"{where}.candidates"),
        )

    def decode_ecg(self, ecg: Any, where: str, budget: SampleBudget | None = None) -> torch.Tensor:
        """The model's ``[1, C, T]`` input for an ECG in any instance form."""
        return self.decode_ecg_info(ecg, where, budget)[0]

    def decode_ecg_info(
        self, ecg: Any, where: str, budget: SampleBudget | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """:meth:`decode_ecg` and the transform's info (``lead_scale_mv``, ``lead_mask``, ...)."""
        assert self.preprocess_params is not None
        rows, info = decode_instance(ecg, self.preprocess_params, self.limits, where, budget)
        return torch.from_numpy(rows[:1].copy()), info  # a windowed record: its first window

    def image_for(
        self, image: Any, where: str, signal: torch.Tensor, info: dict[str, Any]
    ) -> torch.Tensor | None:
        """The image tower's input: the request's image, else the ECG rendered on paper."""
        if image is None and self.gem.config.image:
            return self.render_image(signal, info, where)
        return self.decode_image(image, where)

    def render_image(self, signal: torch.Tensor, info: dict[str, Any], where: str) -> torch.Tensor:
        """``[1, 1, H, W]``: the ``[1, C, T]`` input printed as render-images prints it.

        Back in mV with the transform's per-lead scale and offset (a tensor instance: the
        preprocessing's ``scale``), blank where a lead is missing, at render-images' default
        resolution, then read as a training image is (PNG, grayscale, the model's width).
        """
        from ecgflow.models.gem_evidence import scale_mv
        from ecgflow.params.render import RenderParams
        from ecgflow.render.paper import render_paper
        from ecgflow.training.gem_data import load_paper_image

        params = self.preprocess_params
        assert params is not None
        x = signal[0].numpy().astype(np.float64)
        present = None
        if "lead_scale_mv" in info:
            scale = np.asarray(info["lead_scale_mv"], dtype=np.float64)[:, None]
            mv = x * scale + np.asarray(info["lead_offset_mv"], dtype=np.float64)[:, None]
            present = np.asarray(info["lead_mask"], dtype=bool)
        else:
            factor = scale_mv({"params": params.model_dump(mode="json")})
            if factor is None:
                raise RequestError(
                    f"{where}: missing, and a normalised tensor cannot be printed in mV "
                    "(send the paper image, or the ECG as a signal or WFDB record)"
                )
            mv = x * factor
        paper = render_paper(mv, params.fs, list(params.channels), RenderParams().dpi, present)
        buffer = io.BytesIO()
        paper.save(buffer, format="PNG", compress_level=1)
        buffer.seek(0)
        return load_paper_image(buffer, self.gem.config.image_size)[None]

    def measure_evidence(self, signal: torch.Tensor) -> Any:
        """The evidence of a decoded ``[1, C, T]`` ECG, or None when the model reads none.

        Measured on the model's input (GEM's preprocessing keeps the signal as recorded, in
        units of ``scale`` mV, at the preprocess rate) with the model's lead-quality model.
        """
        from ecgflow.models.gem_evidence import scale_mv

        reader = self.gem.evidence_reader
        params = self.preprocess_params
        if reader is None or params is None:
            return None
        scale = scale_mv({"params": params.model_dump(mode="json")})
        if scale is None:
            return None
        return reader.measure(signal[0].numpy(), params.fs, list(params.channels), scale)

    def decode_image(self, image: Any, where: str) -> torch.Tensor | None:
        """A base64 PNG (or a ``data:`` URL) as the image tower's input; required if it has one."""
        from ecgflow.training.gem_data import load_paper_image

        if not self.gem.config.image:
            if image is not None:
                raise RequestError(f"{where}: this model reads no images; leave it out")
            return None
        if image is None:
            raise RequestError(f"{where}: missing (this model reads the paper ECG image too)")
        if not isinstance(image, str):
            raise RequestError(f"{where}: a base64 PNG string expected")
        data = image.split(",", 1)[1] if image.startswith("data:") else image
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{where}: malformed base64") from None
        self.check_image_size(raw, where)
        try:
            return load_paper_image(io.BytesIO(raw), self.gem.config.image_size)[None]
        except EcgflowError:
            raise RequestError(f"{where}: not a readable image") from None

    def check_image_size(self, raw: bytes, where: str) -> None:
        """Refuse an image whose header announces too many pixels or a strip-like shape.

        Only the header is read (``PIL.Image.open`` is lazy): a 1 × 4000 px PNG of 89 bytes is
        refused before it is decoded and resized to the model's width (~2.5 GB).
        """
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            raise RequestError(f"{where}: not a readable image") from None
        limits = self.gem_limits
        if width < 1 or height < 1 or width * height > limits.max_image_pixels:
            raise RequestError(
                f"{where}: {width} × {height} px, at most {limits.max_image_pixels:,} pixels "
                f"(ecgflow serve --limit max_image_pixels=N)"
            )
        if max(width, height) > limits.max_image_aspect * min(width, height):
            raise RequestError(
                f"{where}: {width} × {height} px, sides at most {limits.max_image_aspect:g}:1 "
                f"(a paper ECG; ecgflow serve --limit max_image_aspect=R)"
            )

    def check_question(self, question: Any, where: str) -> str:
        """A non-empty question within the length limit."""
        if not isinstance(question, str) or not question.strip():
            raise RequestError(f"{where}: a non-empty string expected")
        if len(question) > self.gem_limits.max_question_chars:
            raise RequestError(
                f"{where}: {len(question)} characters, at most {self.gem_limits.max_question_chars}"
            )
        return question.strip()

    def check_new_tokens(self, value: Any, where: str) -> int:
        """The token limit asked for (default when unset), within the server's limit."""
        if value is None:
            return self.gem_limits.default_new_tokens
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestError(f"{where}: a positive integer expected")
        if value > self.gem_limits.max_new_tokens:
            raise RequestError(f"{where}: {value}, at most {self.gem_limits.max_new_tokens}")
        return value

    def _candidates(self, value: Any, where: str) -> list[str] | None:
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(c, str) and c.strip() for c in value)
        ):
            raise RequestError(f"{where}: a non-empty list of non-empty strings expected")
        if len(value) > self.gem_limits.max_candidates:
            raise RequestError(f"{where}: at most {self.gem_limits.max_candidates} candidates")
        return [c.strip() for c in value]

    # --- answering -----------------------------------------------------------------------------

    async def answer_async(self, question: Question, streamer: Any = None) -> Answer:
        """:meth:`answer` in the model's thread."""
        return await self.in_model_thread(self.answer, question, streamer)

    async def in_model_thread(self, function: Any, *args: Any) -> Any:
        """``function(*args)`` in the one thread that runs the model (its torch threads stay)."""
        if self._runner is None:
            self._runner = ThreadPoolExecutor(1, thread_name_prefix="ecgflow-gem")
        return await asyncio.get_running_loop().run_in_executor(self._runner, function, *args)

    def answer(self, question: Question, streamer: Any = None) -> Answer:
        """Choose among the candidates, or generate (token and time limits)."""
        from ecgflow.text.evidence import with_evidence

        gem = self.gem
        lines = None if question.evidence is None else question.evidence.text()
        stated = None if question.evidence is None else question.evidence.to_json()
        prompt = with_evidence(question.text, lines)
        prompt_tokens = len(gem._ids(gem.prompt(prompt)))
        with self._lock, torch.no_grad():
            if question.candidates:
                text = gem.choose(
                    question.signal,
                    [question.text],
                    [question.candidates],
                    question.image,
                    evidence=[lines],
                )[0]
                if streamer is not None:
                    streamer.put_text(text)
                return Answer(text, "stop", prompt_tokens, len(gem._ids(text)), stated)
            config = gem.lm.get_base_model().generation_config
            saved = config.begin_suppress_tokens
            if is_open_question(question.text):  # an interpretation, never a bare yes / no
                config.begin_suppress_tokens = self._yes_no_ids()
            try:
                ids = gem.generate_ids(
                    question.signal,
                    [prompt],
                    question.image,
                    max_new_tokens=question.max_new_tokens,
                    max_time=self.gem_limits.timeout_s,
                    streamer=streamer,
                )[0]
            finally:
                config.begin_suppress_tokens = saved
        finished = gem.eos_id in ids
        text = gem.tokenizer.decode(ids, skip_special_tokens=True).strip()
        used = ids.index(gem.eos_id) if finished else len(ids)
        return Answer(text, "stop" if finished else "length", prompt_tokens, used, stated)

    def _yes_no_ids(self) -> list[int]:
        """The tokens that are "yes" or "no" as a whole word (cased, with a space or not)."""
        words = [p + w for w in ("yes", "Yes", "YES", "no", "No", "NO") for p in ("", " ")]
        return sorted({ids[0] for ids in map(self.gem._ids, words) if len(ids) == 1})


_CLOSED_START = re.compile(
    r"^\s*(is|are|was|were|does|do|did|has|have|had|can|could|should|would|will|shall|may|"
    r"might|must)\b",
    re.IGNORECASE,
)


def is_open_question(text: str) -> bool:
    """Whether ``text`` asks for a description, not a yes / no ("Describe ...", "What ...").

    A question that opens with an auxiliary verb ("Is there ...", "Does lead V1 ...") is
    closed; every other question is open, and its generated answer may not start with a bare
    yes or no (the first token is kept from them: a model trained mostly on yes / no
    questions would otherwise answer "Describe the findings" with "No").
    """
    return _CLOSED_START.match(text) is None


def _short_hash(path: Path) -> str:
    from ecgflow.manifest import sha256_file

    return "sha-" + sha256_file(path)[:12]
