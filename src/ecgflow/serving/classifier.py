"""The KServe model behind ``ecgflow serve``: raw ECG in, labelled probabilities out.

V1 (``POST /v1/models/NAME:predict``)::

    {"instances": [INSTANCE, ...]}
    → {"predictions": [{"probabilities": {LABEL: p}, "positive": [LABEL, ...], ...}],
       "model_name": ..., "model_version": ...}

V2 / Open Inference Protocol (``POST /v2/models/NAME/infer``), one of these inputs:

* ``ecg``: FP32 ``[B, C, T]`` preprocessed rows;
* ``signal``: FP32 ``[C, S]`` or ``[B, C, S]`` raw signals with parameters ``fs`` and ``leads``
  (comma-separated) and optionally ``units``;
* ``wfdb``: BYTES ``[B]``, each a JSON object ``{"header": B64, "signal": B64}``;

answered with ``probabilities`` FP32 ``[B, L]`` (``parameters.labels`` names the columns) and
``positive`` BYTES ``[B]`` (comma-separated labels at the exported thresholds).

INSTANCE forms are in :mod:`ecgflow.serving.requests`. A record cut into windows is scored by
the mean of its windows' probabilities, as eval scores it. Bad requests raise
:class:`kserve.errors.InvalidInput` (HTTP 400) with the message naming the field.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from ecgflow.errors import EcgflowError
from ecgflow.serving.batching import RowBatcher
from ecgflow.serving.bundle import ModelBundle, load_bundle, resolve_model
from ecgflow.serving.http_app import configure_app, log_client_errors_briefly
from ecgflow.serving.requests import (
    Decoded,
    RequestError,
    SampleBudget,
    ServingLimits,
    decode_instances,
    join_parts,
    lead_list,
    numeric_array,
    off_loop,
    raw_record,
    tensor_rows,
    transform,
)
from ecgflow.serving.requests import finite as finite_rows

log = logging.getLogger(__name__)

V2_TENSOR, V2_SIGNAL, V2_WFDB = "ecg", "signal", "wfdb"


class ECGClassifier(Model):
    """An exported ecgflow classifier as a KServe model (V1 and V2 REST, gRPC)."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        limits: ServingLimits | None = None,
        max_batch_rows: int = 1,
        max_wait_ms: float = 0.0,
        threads: int = 1,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.limits = limits or ServingLimits()
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = max_wait_ms
        self.threads = threads
        self.cache_dir = cache_dir
        self.bundle: ModelBundle | None = None
        self.batcher: RowBatcher | None = None

    def load(self) -> bool:
        """Resolve and open the model; raises :class:`EcgflowError`, never ready without one."""
        folder, version = resolve_model(self.model_uri, self.cache_dir)
        self.bundle = load_bundle(folder, self.name, version, threads=self.threads)
        self.batcher = RowBatcher(self.bundle.run, self.max_batch_rows, self.max_wait_ms)
        self.ready = True
        log.info(
            "model %s version %s ready: %d labels, input [batch, %d, %d]",
            self.name, self.bundle.version, len(self.bundle.labels),
            self.bundle.n_channels, self.bundle.n_times,
        )  # fmt: skip
        return self.ready

    # kserve's --workers N pickles the model into each worker: reopen the session there
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["bundle"] = None
        state["batcher"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.ready:
            self.load()
            configure_app(self)  # a new process has a new app
            log_client_errors_briefly()  # ... and fresh logging

    def validate(self, payload: Any) -> Any:
        """Requests are checked by :meth:`preprocess`, field by field."""
        return payload

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Decode the request into model rows in a worker thread (the event loop stays free).

        A bad request raises :class:`InvalidInput` (400) naming the field.
        """
        return await off_loop(self.decode, payload)

    def decode(self, payload: Any) -> tuple[Decoded, InferRequest | None]:
        """Model rows for a V1 body or a V2 :class:`InferRequest` (blocking)."""
        bundle = self._bundle()
        try:
            if isinstance(payload, InferRequest):
                return self._decode_v2(payload, bundle), payload
            if not isinstance(payload, dict) or "instances" not in payload:
                raise RequestError("body: expected a JSON object with 'instances' (V1)")
            return decode_instances(payload["instances"], bundle.preprocess, self.limits), None
        except EcgflowError as exc:
            raise InvalidInput(str(exc)) from None

    def metadata(self) -> dict[str, Any]:
        """V2 model metadata: platform, version, the ``ecg`` input and both outputs.

        ``signal`` and ``wfdb`` are accepted in place of ``ecg`` (see the module docstring);
        the metadata names only ``ecg``, the model's own input, so that a generic Open
        Inference Protocol client sends exactly one tensor.
        """
        bundle = self._bundle()
        return {
            "name": self.name,
            "versions": [bundle.version],
            "platform": "onnxruntime_onnx",
            "inputs": [
                {"name": V2_TENSOR, "datatype": "FP32",
                 "shape": [-1, bundle.n_channels, bundle.n_times]},
            ],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(bundle.labels)],
                 "parameters": {"labels": ",".join(bundle.labels)}},
                {"name": "positive", "datatype": "BYTES", "shape": [-1]},
            ],
        }  # fmt: skip

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Probabilities for every row, batched with concurrent requests."""
        decoded, request = payload
        assert self.batcher is not None
        probabilities = await self.batcher.submit(decoded.rows)
        return decoded, request, probabilities

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None) -> Any:
        """Per-record probabilities (windows averaged) and positive labels."""
        decoded, request, probabilities = result
        bundle = self._bundle()
        per_record = _per_record(probabilities, decoded.counts)
        positive = per_record >= bundle.thresholds[None, :]
        if request is not None:
            return self._v2_response(request, per_record, positive, bundle)
        predictions = []
        for i, info in enumerate(decoded.infos):
            predictions.append(
                {
                    "probabilities": dict(zip(bundle.labels, per_record[i].tolist(), strict=True)),
                    "positive": [bundle.labels[j] for j in np.flatnonzero(positive[i])],
                    **info,
                }
            )
        return {
            "predictions": predictions,
            "model_name": bundle.name,
            "model_version": bundle.version,
        }

    def _bundle(self) -> ModelBundle:
        if self.bundle is None:
            raise EcgflowError(f"model {self.name} is not loaded")
        return self.bundle

    def _decode_v2(self, request: InferRequest, bundle: ModelBundle) -> Decoded:
        if len(request.inputs) != 1:
            names = [i.name for i in request.inputs]
            raise RequestError(
                f"inputs: send exactly one of '{V2_TENSOR}', '{V2_SIGNAL}', '{V2_WFDB}'; "
                f"got {names}"
            )
        tensor = request.inputs[0]
        where = f"inputs[{tensor.name}]"
        if tensor.name == V2_WFDB:
            if tensor.datatype != "BYTES":
                raise RequestError(f"{where}: datatype must be BYTES, got {tensor.datatype}")
            items = [_json_item(item, f"{where}[{i}]") for i, item in enumerate(_items(tensor))]
            return decode_instances(
                [{"wfdb": item} for item in items], bundle.preprocess, self.limits, where
            )
        if tensor.datatype not in ("FP32", "FP64", "FP16", "INT16", "INT32"):
            raise RequestError(f"{where}: datatype must be FP32 (or another number type)")
        SampleBudget(self.limits.max_samples).take(math.prod(tensor.shape), f"{where}.shape")
        x = _v2_array(tensor, where)
        if x.size == 0:
            raise RequestError(f"{where}: empty tensor (shape {tensor.shape})")
        if tensor.name == V2_TENSOR:
            if x.ndim != 3:
                raise RequestError(
                    f"{where}: shape must be [batch, {bundle.n_channels}, {bundle.n_times}], "
                    f"got {list(x.shape)}"
                )
            self._check_count(len(x), where)
            rows = [
                tensor_rows(row, bundle.preprocess, self.limits, f"{where}[{i}]")
                for i, row in enumerate(x)
            ]
            return join_parts([(row[None], {"kind": "tensor"}) for row in rows])
        if tensor.name == V2_SIGNAL:
            return self._decode_v2_signal(tensor, x, bundle, where)
        raise RequestError(
            f"inputs: unknown input {tensor.name!r}; expected '{V2_TENSOR}', '{V2_SIGNAL}' "
            f"or '{V2_WFDB}'"
        )

    def _decode_v2_signal(
        self, tensor: Any, x: np.ndarray, bundle: ModelBundle, where: str
    ) -> Decoded:
        params = _parameters(tensor)
        if "fs" not in params:
            raise RequestError(f"{where}.parameters.fs: missing (the sampling rate in Hz)")
        leads = lead_list(params.get("leads"), f"{where}.parameters.leads")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise RequestError(
                f"{where}: shape must be [leads, samples] or [batch, leads, samples]"
            )
        self._check_count(len(x), where)
        finite_rows(x, where)
        budget = SampleBudget(self.limits.max_samples)
        parts = []
        for i, signal in enumerate(x):
            instance = {"signal": signal, "fs": params["fs"], "leads": leads}
            if "units" in params:
                instance["units"] = params["units"]
            record = raw_record(instance, f"{where}[{i}]", budget)
            parts.append(transform(record, bundle.preprocess, self.limits, f"{where}[{i}]"))
        return join_parts(parts)

    def _check_count(self, n: int, where: str) -> None:
        if n > self.limits.max_instances:
            raise RequestError(f"{where}: {n} records, at most {self.limits.max_instances}")

    def _v2_response(
        self,
        request: InferRequest,
        per_record: np.ndarray,
        positive: np.ndarray,
        bundle: ModelBundle,
    ) -> InferResponse:
        labels = np.array(
            [",".join(bundle.labels[j] for j in np.flatnonzero(row)) for row in positive],
            dtype=object,
        )
        probabilities = InferOutput(
            "probabilities", list(per_record.shape), "FP32",
            parameters={"labels": ",".join(bundle.labels)},
        )  # fmt: skip
        probabilities.set_data_from_numpy(per_record.astype(np.float32), binary_data=False)
        names = InferOutput("positive", [len(labels)], "BYTES")
        names.set_data_from_numpy(labels, binary_data=False)
        return InferResponse(
            response_id=request.id or "",
            model_name=bundle.name,
            model_version=bundle.version,
            infer_outputs=[probabilities, names],
        )


def _per_record(probabilities: np.ndarray, counts: list[int]) -> np.ndarray:
    if all(c == 1 for c in counts):
        return probabilities
    ends = np.cumsum(counts)
    return np.stack(
        [probabilities[e - c : e].mean(axis=0) for c, e in zip(counts, ends, strict=True)]
    )


def _parameters(tensor: Any) -> dict[str, Any]:
    params = tensor.parameters or {}
    out = {}
    for key, value in dict(params).items():
        # REST gives plain values, gRPC InferParameter messages
        if hasattr(value, "WhichOneof"):
            value = getattr(value, value.WhichOneof("parameter_choice"))
        out[key] = value
    return out


def _v2_array(tensor: Any, where: str) -> np.ndarray:
    try:
        x = tensor.as_numpy()
    except Exception as exc:  # shape / data mismatch surfaces from numpy's reshape
        raise RequestError(f"{where}: data does not fit shape {tensor.shape} ({exc})") from None
    return numeric_array(x, where)


def _items(tensor: Any) -> list[Any]:
    """A BYTES tensor's elements, sent as JSON or in the binary extension."""
    if tensor._raw_data is None:
        return list(tensor.data)
    try:
        return list(tensor.as_numpy().ravel())
    except Exception as exc:  # KServe's length-prefixed decoding on a malformed body
        raise RequestError(f"inputs[{tensor.name}]: malformed BYTES data ({exc})") from None


def _json_item(item: Any, where: str) -> Any:
    if isinstance(item, bytes):
        item = item.decode("utf-8", errors="replace")
    if isinstance(item, dict):
        return item
    try:
        return json.loads(item)
    except (TypeError, ValueError):
        raise RequestError(
            f"{where}: a JSON object {{'header': B64, 'signal': B64}} expected"
        ) from None
