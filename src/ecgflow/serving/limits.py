"""What the servers accept: :class:`ServingLimits` (every request) and :class:`GemLimits` (GEM).

Both are set on the command line: ``ecgflow serve --limit KEY=VALUE`` (repeatable, or
``ECGFLOW_SERVE_LIMITS="KEY=VALUE KEY=VALUE"``); :func:`limits_from_options` turns those pairs
into the two models, and an unknown key is an error listing every key with its default.
This module imports only pydantic, so the CLI reads it without loading a server.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecgflow.errors import EcgflowError, raises_ecgflow_error


class ServingLimits(BaseModel):
    """What one request may carry and how requests are admitted; bad values raise EcgflowError.

    Set on the command line with ``ecgflow serve --limit KEY=VALUE`` (``docs/serving.md``).
    """

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(64 << 20, ge=1024, description="largest request body")
    max_instances: int = Field(256, ge=1, description="instances (records) per request")
    max_samples: int = Field(
        2_000_000, ge=1000, description="leads × samples per request, all instances together"
    )
    min_seconds: float = Field(1.0, gt=0, description="shortest raw signal")
    max_seconds: float = Field(600.0, gt=0, description="longest raw signal")
    max_fs: float = Field(10_000.0, gt=0, description="highest raw sampling rate")
    max_amplitude_mv: float = Field(
        1000.0, gt=0, description="largest |value| of a raw signal or WFDB record, mV"
    )
    max_tensor_abs: float = Field(1e4, gt=0, description="largest |value| of a preprocessed tensor")
    max_concurrent: int = Field(4, ge=1, description="requests read, decoded and answered at once")
    max_inflight_mb: float = Field(
        128.0, gt=0, description="request bodies (MiB) being read and answered at once"
    )
    header_timeout_s: float = Field(10.0, gt=0, description="longest wait for a request's headers")
    body_timeout_s: float = Field(60.0, gt=0, description="longest wait for a request's body")

    _as_ecgflow_error = raises_ecgflow_error("serving limits")


class GemLimits(BaseModel):
    """What one GEM request may ask for; invalid values raise EcgflowError."""

    model_config = ConfigDict(extra="forbid")

    max_question_chars: int = Field(2000, ge=1, description="longest question")
    max_new_tokens: int = Field(256, ge=1, description="most generated tokens per answer")
    default_new_tokens: int = Field(96, ge=1, description="generated tokens when not asked")
    timeout_s: float = Field(60.0, gt=0, description="longest generation per answer")
    max_instances: int = Field(8, ge=1, description="questions per request")
    max_candidates: int = Field(16, ge=1, description="closed-set candidates per question")
    max_image_pixels: int = Field(
        16_000_000, ge=1, description="largest image (width × height), checked before decoding"
    )
    max_image_aspect: float = Field(
        8.0, ge=1, description="largest ratio of an image's long side to its short side"
    )

    _as_ecgflow_error = raises_ecgflow_error("GEM serving limits")


def limits_from_options(pairs: list[str], **fixed: Any) -> tuple[ServingLimits, dict[str, Any]]:
    """``ServingLimits`` from ``KEY=VALUE`` pairs (and ``fixed`` fields), plus the GEM ones.

    The GEM keys are returned as a dict for :class:`GemLimits`, validated here already.
    """
    serving: dict[str, Any] = dict(fixed)
    gem: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not value.strip():
            raise EcgflowError(f"--limit {pair!r}: KEY=VALUE expected; {_known()}")
        if key not in ServingLimits.model_fields and key not in GemLimits.model_fields:
            raise EcgflowError(f"--limit {pair!r}: unknown key {key!r}; {_known()}")
        if key in ServingLimits.model_fields:  # max_instances is in both: it sets both
            serving[key] = value.strip()
        if key in GemLimits.model_fields:
            gem[key] = value.strip()
    try:
        limits = ServingLimits.model_validate(serving)
        GemLimits.model_validate(gem)
    except EcgflowError as exc:  # name the option these come from, not a flag of their own
        raise EcgflowError("--limit: " + re.sub(r" / --[a-z0-9-]+", "", str(exc))) from None
    return limits, gem


def _known() -> str:
    fields = {**GemLimits.model_fields, **ServingLimits.model_fields}  # serving's max_instances
    return "keys (default): " + ", ".join(
        f"{key} ({field.default:,})" if isinstance(field.default, int) else
        f"{key} ({field.default:g})" for key, field in fields.items()
    )  # fmt: skip
