"""Parameters of the label stage."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class LabelParams(Params):
    """Parameters of the label stage (the names are checked by :mod:`ecgflow.labels`)."""

    label_set: str = Field(
        "auto",
        min_length=1,
        description="label set: ptbxl-{superdiagnostic,subdiagnostic,diagnostic,form,rhythm,"
        "all}, cinc2020-scored, cinc2021-scored, report-patterns[:CONFIG], mapping:CSV, "
        "synthetic, or auto (the usual set for the ingested dataset)",
        examples=["ptbxl-superdiagnostic", "report-patterns", "mapping:/path/map.csv"],
    )
    drop_empty: bool = Field(False, description="leave out records with no label in the set")

    _as_ecgflow_error = raises_ecgflow_error("label", "label")
