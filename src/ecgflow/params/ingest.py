"""Parameters of the ingest stage."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class IngestParams(Params):
    """Parameters of the ingest stage."""

    source: str = Field(
        "synthetic://?n=200&seed=0",
        description="dataset to ingest: ptbxl:PATH[?rate=100|500], cinc:PATH, code15:PATH, "
        "folder:PATH[?fs=HZ], synthetic://?n=N&seed=S, s3://bucket/prefix, "
        "https://mirror/path/ or a PATH",
    )
    limit: int | None = Field(None, ge=0, description="ingest at most this many records")
    strict: bool = Field(False, description="fail (after writing outputs) if any input is rejected")
    workers: int = Field(0, ge=0, description="reader processes; 0 = one per core (max 8)")

    _as_ecgflow_error = raises_ecgflow_error("ingest", "ingest")
