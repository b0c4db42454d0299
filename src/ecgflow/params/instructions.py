"""Parameters of build-instructions (GEM's instruction data)."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class BuildInstructionsParams(Params):
    """Parameters of build-instructions; invalid values raise EcgflowError."""

    noise_questions_per_record: int = Field(
        12, ge=0, description="lead-level noise questions drawn per PTB-XL record"
    )
    label_questions: bool = Field(True, description="one yes/no question per label")
    report_questions: bool = Field(True, description="'describe this ECG' with the record text")
    feature_questions: bool = Field(
        True, description="heart rate, regularity and axis questions measured on the signal"
    )
    evidence: bool = Field(
        True,
        description="write each record's measured evidence (per-lead quality model fitted on "
        "the train split's PTB-XL lead annotations, heart rate, RR variability, axis) into its "
        "conversations after <ecg>",
    )
    seed: int = Field(0, description="seed of the drawn questions and their wording")

    _as_ecgflow_error = raises_ecgflow_error("build-instructions", "instructions")
