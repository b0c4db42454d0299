"""Parameters of the preprocess stage and of the record → model-input transform.

:func:`gem_preprocess` is the pipeline config's second preprocess section: GEM reads the
signal as recorded (mV, no filters), since noise and drift questions are about exactly what
baseline removal and band-pass filtering take away.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params

LEAD_MODES = ("12lead", "lead1-dup", "leads:NAME,NAME,...")


class PreprocessParams(Params):
    """Parameters of the preprocess stage and of :func:`ecgflow.signal.transform.transform_record`.

    Invalid values raise :class:`EcgflowError` naming the field.
    """

    fs: float = Field(100.0, description="target sampling rate in Hz (polyphase resampling)")
    bandpass: tuple[float, float] | None = Field(
        (0.5, 40.0),
        description="Butterworth order-4 zero-phase band-pass (low, high) in Hz after "
        "resampling; high must be below fs/2; none to skip",
    )
    notch: float | None = Field(
        None, description="power-line notch frequency in Hz (50 or 60); skipped if >= fs/2"
    )
    baseline: bool = Field(
        True, description="baseline-wander removal: zero-phase Butterworth high-pass 0.5 Hz"
    )
    normalise: Literal["zscore", "scale", "none"] = Field(
        "zscore", description="per-lead z-score, division by `scale` mV, or none"
    )
    scale: float = Field(1.0, description="mV divided out when normalise='scale'")
    length_s: float | None = Field(
        10.0, description="fixed output length in seconds (centre-crop / zero-pad at the end)"
    )
    window_s: float | None = Field(
        None, description="window length in seconds; each record gives several rows"
    )
    stride_s: float | None = Field(
        None, description="window stride in seconds (default: window_s, no overlap)"
    )
    leads: str = Field(
        "12lead", description="'12lead', 'lead1-dup' (lead I in 12 channels) or 'leads:I,II,V1'"
    )
    workers: int = Field(0, description="worker processes; 0 = one per CPU core")
    chunk_size: int = Field(256, description="records per batch / shard (memory stays flat)")

    @field_validator("bandpass", mode="before")
    @classmethod
    def _parse_band(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() in {"", "none"}:
                return None
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("fs", "scale")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"must be a finite number > 0, got {value}")
        return value

    @field_validator("notch", "length_s", "window_s", "stride_s")
    @classmethod
    def _positive_or_none(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError(f"must be > 0 (or unset), got {value}")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be >= 0 (0 = one per CPU core), got {value}")
        return value

    @field_validator("chunk_size")
    @classmethod
    def _chunk(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value

    @field_validator("leads")
    @classmethod
    def _leads(cls, value: str) -> str:
        if value not in ("12lead", "lead1-dup"):
            lead_names(value)  # raises ValueError when malformed
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessParams:
        if self.bandpass is not None:
            low, high = self.bandpass
            if not 0 < low < high:
                raise ValueError(f"bandpass: need 0 < low < high, got {self.bandpass}")
            if high >= self.fs / 2:
                raise ValueError(
                    f"bandpass: high cut-off {high:g} Hz must be below fs/2 = {self.fs / 2:g} Hz"
                )
        if self.window_s is not None:
            if "length_s" in self.model_fields_set and self.length_s is not None:
                raise ValueError("length_s: set either length_s or window_s, not both")
            self.length_s = None
        elif self.length_s is None:
            raise ValueError("length_s: set length_s (fixed length) or window_s (windows)")
        if self.stride_s is not None and self.window_s is None:
            raise ValueError("stride_s: needs window_s")
        for name in ("length_s", "window_s", "stride_s"):
            value = getattr(self, name)
            if value is not None and round(value * self.fs) < 1:
                raise ValueError(f"{name}: {value} s is less than one sample at {self.fs} Hz")
        return self

    _as_ecgflow_error = raises_ecgflow_error("preprocess", "preprocess")

    @property
    def channels(self) -> list[str]:
        """Output channel names, in order."""
        return lead_names(self.leads)

    @property
    def n_times(self) -> int:
        """Samples per output row (fixed length or window)."""
        seconds = self.length_s if self.window_s is None else self.window_s
        assert seconds is not None
        return round(seconds * self.fs)

    @property
    def stride(self) -> int:
        """Window stride in samples at ``fs`` (windows only)."""
        return round((self.stride_s or self.window_s or 0.0) * self.fs)


def lead_names(spec: str) -> list[str]:
    """Output channel names of a ``leads`` mode; :class:`ValueError` if malformed."""
    from ecgflow.io.record import STANDARD_LEADS, normalise_lead_name  # numpy: on first use

    if spec == "12lead":
        return list(STANDARD_LEADS)
    if spec == "lead1-dup":
        return ["I"] * len(STANDARD_LEADS)
    if spec.startswith("leads:"):
        names = [normalise_lead_name(n) for n in spec[len("leads:") :].split(",") if n.strip()]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"'leads:' needs distinct lead names, got {spec!r}")
        return names
    raise ValueError(f"must be one of {', '.join(LEAD_MODES)}, got {spec!r}")


def gem_preprocess() -> PreprocessParams:
    """GEM's signals: as recorded, in mV (no baseline removal, no band-pass, fixed scale)."""
    return PreprocessParams(baseline=False, bandpass=None, normalise="scale")
