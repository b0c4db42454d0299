"""Offline validation of Kubernetes objects: pinned CRD schemas and ``kubernetes-validate``.

Custom resources are validated against ``../shared/schemas/strict`` (``additionalProperties:
false``, so a misspelt field fails); core kinds with ``kubernetes-validate`` in strict mode.
Without ``../shared/schemas`` the tests that need a CRD schema skip (``require_schemas``).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared/schemas, found the way tests/conftest.py finds ../shared/data
SCHEMAS = Path(os.environ.get("ECGFLOW_SHARED_SCHEMAS", ROOT.parent / "shared" / "schemas"))
STRICT = SCHEMAS / "strict"
K8S_VERSION = "1.33"


def require_schemas() -> Path:
    """The strict CRD schemas folder; skips the calling test when ../shared/schemas is absent."""
    if not STRICT.is_dir():
        pytest.skip(
            f"pinned CRD schemas not found at {STRICT} "
            "(../shared/schemas absent; set ECGFLOW_SHARED_SCHEMAS)"
        )
    return STRICT


def crd_schema_path(api_version: str, kind: str) -> Path:
    """Where the strict schema of ``kind`` in ``api_version`` (``group/version``) lives."""
    group, _, version = api_version.rpartition("/")
    return STRICT / group / f"{kind.lower()}_{version}.json"


@cache
def _crd_validator(api_version: str, kind: str) -> Any:
    import jsonschema

    schema = json.loads(crd_schema_path(api_version, kind).read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Why ``obj`` is not a valid object of its kind ([] when it is).

    An object whose API group has a folder under the strict schemas is a custom resource and
    is validated against its pinned schema (a missing schema file is an error); anything
    else goes to ``kubernetes-validate``, where an unknown kind is an error too.
    """
    import kubernetes_validate

    kind, api = str(obj.get("kind")), str(obj.get("apiVersion"))
    group = api.rpartition("/")[0]
    if group and (STRICT / group).is_dir():
        if not crd_schema_path(api, kind).is_file():
            return [f"no pinned schema for {api} {kind} ({crd_schema_path(api, kind)})"]
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(_crd_validator(api, kind).iter_errors(obj), key=lambda e: list(e.path))
        ]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        # kubernetes-validate lets unknown kinds pass with a warning: here they fail
        return [f"no schema to validate {api} {kind} against ({e.message})"]
    return []
