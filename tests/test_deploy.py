"""`ecgflow deploy`: MLflow version → the chart's InferenceService → server-side apply → Ready.

A real MLflow store (SQLite) holds the registered versions; the Kubernetes API is the fake one
of tests/fake_kube.py (kmock), talked to by the real kubernetes client, with the test playing
KServe's controller (it marks the applied generation Ready and gives it a URL). Rendered objects
validate against the strict InferenceService schema.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_kube import FakeKube, condition, fake_kube
from kube_objects import require_schemas, schema_errors
from typer.testing import CliRunner

from ecgflow.cli import app
from ecgflow.deploy import (
    FIELD_MANAGER,
    MODEL,
    PREVIOUS_MODEL,
    DeployTarget,
    chart_artifacts_destination,
    deploy,
    render_inference_service,
    storage_uri,
)
from ecgflow.errors import EcgflowError
from ecgflow.registry import CHAMPION, KIND_TAG

ISVCS = "serving.kserve.io/v1beta1/inferenceservices"
NS = "ecg"
V1 = "s3://mlflow/1/models/m-111/artifacts"
V2 = "s3://mlflow/1/models/m-222/artifacts"
POLL = 0.02


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real MLflow store with ecg-classifier versions 1, 2 (s3), 3 (a local file), 4 (proxied)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    client.create_registered_model("ecg-classifier")
    for source in (
        V1,
        V2,
        f"file://{tmp_path}/model",
        "mlflow-artifacts:/1/models/m-444/artifacts",
    ):
        client.create_model_version("ecg-classifier", source, tags={KIND_TAG: "classifier"})
    client.set_registered_model_alias("ecg-classifier", CHAMPION, "1")
    return client


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with fake_kube([ISVCS]) as fake:
        yield fake


@pytest.fixture
def kserve(kube: FakeKube) -> Iterator[FakeKube]:
    """KServe's part: every applied generation becomes Ready with a URL."""
    stop = threading.Event()

    def reconcile() -> None:
        while not stop.wait(POLL / 2):
            for name in kube.names(ISVCS, NS):
                obj = kube.get(ISVCS, NS, name)
                generation = (obj or {}).get("metadata", {}).get("generation")
                if obj is None or obj.get("status", {}).get("observedGeneration") == generation:
                    continue
                kube.patch(
                    ISVCS, NS, name,
                    {"status": {
                        "observedGeneration": generation,
                        "url": f"http://{name}.{NS}.example.com",
                        "conditions": [condition("PredictorReady"), condition("Ready")],
                    }},
                )  # fmt: skip

    thread = threading.Thread(target=reconcile, daemon=True)
    thread.start()
    yield kube
    stop.set()
    thread.join(5)


def _deploy(kube: FakeKube, model: str | None, **kwargs: Any) -> Any:
    return deploy(model, NS, api_client=kube.api_client, poll_s=POLL, timeout_s=5, **kwargs)


def _container(isvc: dict[str, Any], side: str = "predictor") -> dict[str, Any]:
    spec = isvc["spec"][side] if side == "predictor" else isvc["spec"]["canary"][0]["predictor"]
    return spec["containers"][0]


def _storage(isvc: dict[str, Any], side: str = "predictor") -> str:
    env = {e["name"]: e["value"] for e in _container(isvc, side)["env"]}
    return env["STORAGE_URI"]


def test_deploy_applies_the_champion_and_waits_for_ready(registry: Any, kserve: FakeKube) -> None:
    done = _deploy(kserve, "models:/ecg-classifier@champion")
    assert done.applied and done.url == f"http://ecg-classifier.{NS}.example.com"
    stored = kserve.get(ISVCS, NS, "ecg-classifier")
    assert _storage(stored) == V1
    assert stored["metadata"]["annotations"][MODEL] == "models:/ecg-classifier/1"
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == FIELD_MANAGER
    assert stored["metadata"]["managedFields"] == [{"manager": FIELD_MANAGER, "operation": "Apply"}]
    (apply,) = kserve.requests("update", ISVCS)
    assert "apply-patch" in apply.headers["Content-Type"]
    assert apply.params["fieldManager"] == FIELD_MANAGER and apply.params["force"] == "True"


def test_a_new_champion_replaces_the_old_and_rollback_restores_it(
    registry: Any, kserve: FakeKube
) -> None:
    _deploy(kserve, "models:/ecg-classifier@champion")
    registry.set_registered_model_alias("ecg-classifier", CHAMPION, "2")
    _deploy(kserve, "models:/ecg-classifier@champion")
    stored = kserve.get(ISVCS, NS, "ecg-classifier")
    assert _storage(stored) == V2
    assert stored["metadata"]["annotations"][PREVIOUS_MODEL] == "models:/ecg-classifier/1"
    assert stored["metadata"]["generation"] == 2

    back = _deploy(kserve, None, rollback=True)
    assert back.target.version == "1"
    stored = kserve.get(ISVCS, NS, "ecg-classifier")
    assert _storage(stored) == V1
    # the registry agrees with what is served, and a second rollback goes forward again
    assert str(registry.get_model_version_by_alias("ecg-classifier", CHAMPION).version) == "1"
    assert stored["metadata"]["annotations"][PREVIOUS_MODEL] == "models:/ecg-classifier/2"


def test_rollback_without_a_previous_model_says_so(registry: Any, kserve: FakeKube) -> None:
    with pytest.raises(EcgflowError, match="no InferenceService ecg/ecg-classifier"):
        _deploy(kserve, None, rollback=True)
    _deploy(kserve, "models:/ecg-classifier/1")
    with pytest.raises(EcgflowError, match="records no previous model"):
        _deploy(kserve, None, rollback=True)


def test_knative_canary_sends_a_share_to_the_new_model(registry: Any, kserve: FakeKube) -> None:
    _deploy(kserve, "models:/ecg-classifier/1")
    _deploy(kserve, "models:/ecg-classifier/2", canary=10)
    predictor = kserve.get(ISVCS, NS, "ecg-classifier")["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert _storage(kserve.get(ISVCS, NS, "ecg-classifier")) == V2


def test_standard_mode_canary_serves_both_models(registry: Any, kserve: FakeKube) -> None:
    values = {"serving": {"deploymentMode": "Standard"}}
    with pytest.raises(EcgflowError, match="needs a model already served"):
        _deploy(kserve, "models:/ecg-classifier/2", canary=20, values=values)
    _deploy(kserve, "models:/ecg-classifier/1", values=values)
    _deploy(kserve, "models:/ecg-classifier/2", canary=20, values=values)
    stored = kserve.get(ISVCS, NS, "ecg-classifier")
    assert _storage(stored) == V1
    assert _storage(stored, "canary") == V2
    assert stored["spec"]["canary"][0]["trafficPercent"] == 20


def test_not_ready_in_time_names_the_conditions(registry: Any, kube: FakeKube) -> None:
    # no controller: nothing ever becomes Ready
    with pytest.raises(EcgflowError, match=r"ecg/ecg-classifier not Ready after 0.2 s: no status"):
        deploy(
            "models:/ecg-classifier/1", NS, api_client=kube.api_client, poll_s=POLL, timeout_s=0.2
        )


def test_forbidden_apply_is_a_clear_error(registry: Any, kube: FakeKube) -> None:
    kube.fail("update", ISVCS, 403, "inferenceservices is forbidden")
    with pytest.raises(EcgflowError, match=r"refused \(403 Forbidden\).*get/patch on infer"):
        _deploy(kube, "models:/ecg-classifier/1")


def test_versions_kserve_cannot_download_are_refused(registry: Any, kube: FakeKube) -> None:
    with pytest.raises(EcgflowError, match="storage initializer cannot download"):
        _deploy(kube, "models:/ecg-classifier/3")
    with pytest.raises(EcgflowError, match=r"RESOURCE_DOES_NOT_EXIST|not found"):
        _deploy(kube, "models:/ecg-classifier@nope")
    assert kube.requests("update", ISVCS) == []


def test_a_proxied_version_is_served_from_the_charts_bucket(
    registry: Any, kserve: FakeKube
) -> None:
    values = {"s3": {"bucket": "models"}}
    done = _deploy(kserve, "models:/ecg-classifier/4", values=values)
    assert done.target.storage_uri == "s3://models/1/models/m-444/artifacts"
    assert _storage(kserve.get(ISVCS, NS, "ecg-classifier")) == done.target.storage_uri


def test_proxied_artifacts_map_onto_the_servers_destination() -> None:
    assert (
        storage_uri("mlflow-artifacts:/1/models/m-9/artifacts", "s3://mlflow/")
        == "s3://mlflow/1/models/m-9/artifacts"
    )
    assert (
        storage_uri("mlflow-artifacts://mlflow:5000/1/models/m-9/artifacts", "s3://bucket/root")
        == "s3://bucket/root/1/models/m-9/artifacts"
    )
    with pytest.raises(EcgflowError, match="--artifacts-destination"):
        storage_uri("mlflow-artifacts:/1/models/m-9/artifacts")
    # without one, deploy takes the chart's MLflow destination (its s3 values)
    assert chart_artifacts_destination({}) == "s3://mlflow"
    values = {"s3": {"bucket": "models", "prefix": "/team/ecg/"}}
    assert chart_artifacts_destination(values) == "s3://models/team/ecg"


@pytest.mark.parametrize(
    "values, canary",
    [({}, None), ({}, 30), ({"inferenceServices": {"classifier": {"minReplicas": 2}}}, None)],
)
def test_rendered_objects_are_valid_inference_services(
    values: dict[str, Any], canary: int | None
) -> None:
    require_schemas()
    target = DeployTarget("ecg-classifier", "4", "classifier", V2)
    isvc = render_inference_service(target, copy.deepcopy(values), NS, canary)
    assert schema_errors(isvc) == []
    assert isvc["metadata"]["namespace"] == NS
    gem = render_inference_service(DeployTarget("ecg-gem", "2", "gem", V1), {}, NS)
    assert gem["metadata"]["name"] == "ecg-gem" and schema_errors(gem) == []
    limits = _container(gem)["resources"]["limits"]
    assert str(limits["nvidia.com/gpu"]) == "1"


def test_cli_dry_run_prints_yaml_without_mlflow_or_a_cluster(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["deploy", "--model", "models:/ecg-classifier/7", "--storage-uri", V2,
         "--namespace", NS, "--dry-run", "--canary", "25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "kind: InferenceService" in result.output
    assert "canaryTrafficPercent: 25" in result.output
    assert V2 in result.output
    bad = CliRunner().invoke(
        app, ["deploy", "--model", "models:/ecg-classifier/7", "--storage-uri", V2,
              "--dry-run", "--canary", "100"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "between 1 and 99" in bad.output
