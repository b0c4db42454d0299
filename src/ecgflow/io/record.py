"""The one in-memory ECG record every reader returns and every stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgflow.errors import RecordError

#: The twelve standard leads in their conventional order.
STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip
_CANONICAL = {name.upper(): name for name in STANDARD_LEADS}

#: Multipliers that bring a voltage unit to millivolts (keys are upper-cased units).
_TO_MV = {"MV": 1.0, "UV": 1e-3, "µV".upper(): 1e-3, "V": 1e3, "NV": 1e-6}


def normalise_lead_name(name: str) -> str:
    """Return the canonical spelling of a lead name (``avr`` → ``aVR``, ``v1`` → ``V1``).

    Names that are not one of the twelve standard leads (``MLII``, ``vx``, ``PLETH``) are
    returned stripped but otherwise unchanged.
    """
    stripped = name.strip()
    return _CANONICAL.get(stripped.upper(), stripped)


def millivolt_factor(unit: str | None) -> float | None:
    """Multiplier from ``unit`` to mV, or ``None`` when the unit is not a voltage.

    A missing unit is taken as mV, as WFDB does.
    """
    if unit is None or not unit.strip():
        return 1.0
    return _TO_MV.get(unit.strip().upper())


@dataclass
class ECGRecord:
    """An ECG recording: a float32 ``[leads, samples]`` signal in mV plus its context.

    Attributes:
        signal: float32 array ``[n_leads, n_samples]``; voltages in mV. Missing samples are NaN.
        fs: sampling frequency in Hz.
        leads: lead names, normalised (``I, II, III, aVR, aVL, aVF, V1``–``V6``).
        units: one unit per lead after conversion (``mV`` for every voltage lead).
        record_id: identifier unique within a dataset.
        patient_id: identifier of the patient, if known (never logged).
        metadata: anything else the source carries (age, sex, report, codes, header comments).

    """

    signal: np.ndarray
    fs: float
    leads: list[str]
    units: list[str]
    record_id: str
    patient_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2:
            raise RecordError(
                f"record {self.record_id}: signal must be 2-D [leads, samples], "
                f"got shape {self.signal.shape}"
            )
        self.leads = [normalise_lead_name(n) for n in self.leads]
        if len(self.leads) != self.signal.shape[0]:
            raise RecordError(
                f"record {self.record_id}: {len(self.leads)} lead names for "
                f"{self.signal.shape[0]} signal rows"
            )
        if len(self.units) != len(self.leads):
            raise RecordError(
                f"record {self.record_id}: {len(self.units)} units for {len(self.leads)} leads"
            )

    @property
    def n_leads(self) -> int:
        """Number of leads (rows of :attr:`signal`)."""
        return int(self.signal.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples per lead."""
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.n_samples / self.fs if self.fs > 0 else 0.0

    @property
    def n_nonfinite(self) -> int:
        """How many samples are NaN or infinite (missing in the source)."""
        return int(self.signal.size - np.count_nonzero(np.isfinite(self.signal)))

    def validate(self, source: str) -> None:
        """Raise :class:`RecordError` naming ``source`` if the record is unusable.

        Unusable means: fs ≤ 0 or not finite, no leads, no samples, or no finite sample at
        all. A record with only some non-finite samples passes (preprocess repairs it).
        """
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise RecordError(f"{source}: sampling frequency must be > 0 Hz, got {self.fs}")
        if self.n_leads == 0:
            raise RecordError(f"{source}: record has no signals")
        if self.n_samples == 0:
            raise RecordError(f"{source}: zero-length signal (0 samples)")
        if self.n_nonfinite == self.signal.size:
            raise RecordError(
                f"{source}: all {self.signal.size} samples are missing (NaN / WFDB invalid value)"
            )
