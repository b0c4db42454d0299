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

import numpy as np
import pytest
import yaml
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


# --- --upload: a version of the embedded store (SQLite + local files) copied to a real S3 ------


@pytest.fixture(scope="module")
def local_version(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An embedded store (as ``ecgflow run`` makes) with one registered classifier version.

    Returns (tracking URI, the version's local folder).
    """
    import json

    import mlflow
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ecgflow.registry import promote, register

    root = tmp_path_factory.mktemp("embedded")
    export = root / "export"
    (export / "pytorch").mkdir(parents=True)
    weights = numpy_helper.from_array(
        np.random.default_rng(0).normal(0, 0.01, (12 * 100, 3)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["ecg"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Sigmoid", ["logits"], ["probabilities"])],
        "tiny",
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 12, 100])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [weights],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
              str(export / "model.onnx"))  # fmt: skip
    for name, content in {
        "preprocess.json": {"params": {"fs": 100.0, "length_s": 1.0}},
        "thresholds.json": {"labels": list("abc"), "thresholds": dict.fromkeys("abc", 0.5)},
        "label_def.json": {"labels": [{"name": n} for n in "abc"]},
        "parity.json": {"passed": True},
    }.items():
        (export / name).write_text(json.dumps(content))
    (export / "pytorch" / "config.json").write_text("{}")
    (root / "eval").mkdir()
    metrics = {"kind": "classifier", "split": "test", "data_hash": "a" * 64, "macro_auroc": 0.8}
    (root / "eval" / "metrics.json").write_text(json.dumps(metrics))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        register(export, root / "eval")
        assert promote().promoted  # champion, as ecgflow run leaves it
        location = mlflow.MlflowClient(uri).get_model_version_download_uri("ecg-classifier", "1")
    folder = Path(location.removeprefix("file://"))
    assert (folder / "model.onnx").is_file() and (folder / "extra_files").is_dir()
    return uri, folder


@pytest.fixture
def s3_env(s3_server: Any, local_version: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The embedded store as MLflow's, the real SeaweedFS's credentials as the AWS_* ones."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_version[0])
    mlflow.set_tracking_uri(local_version[0])
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ECGFLOW_S3_RETRY_S", "0")
    client = s3_server.client()
    if "models" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="models")
    return client


def _stored_objects(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {
        item["Key"][len(prefix) + 1 :]: client.get_object(Bucket=bucket, Key=item["Key"])[
            "Body"
        ].read()
        for item in listing
    }


def _local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_without_upload_a_local_version_names_upload_and_the_services_stack(
    local_version: tuple[str, Path], kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_version[0])
    with pytest.raises(EcgflowError) as caught:
        _deploy(kube, "models:/ecg-classifier/1")
    message = str(caught.value)
    assert "cannot download" in message and "--upload s3://BUCKET/PREFIX" in message
    assert "ecgflow services up" in message and "ecgflow run --stack services" in message
    assert kube.requests("update", ISVCS) == []


def test_upload_copies_the_version_and_deploys_from_s3(
    s3_env: Any, local_version: tuple[str, Path], kserve: FakeKube
) -> None:
    done = _deploy(kserve, "models:/ecg-classifier/1", upload="s3://models/team/ecg/")
    prefix = "team/ecg/ecg-classifier/1"
    assert done.target.storage_uri == f"s3://models/{prefix}"
    assert _storage(kserve.get(ISVCS, NS, "ecg-classifier")) == f"s3://models/{prefix}"
    local = _local_files(local_version[1])
    assert {"model.onnx", "MLmodel", "extra_files/thresholds.json"} <= set(local)
    assert _stored_objects(s3_env, "models", prefix) == local
    assert {u.rel for u in done.uploaded} == set(local)
    assert all(u.size == len(local[u.rel]) for u in done.uploaded)


def test_upload_with_dry_run_uploads_and_prints_the_service(
    s3_env: Any, local_version: tuple[str, Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["deploy", "--model", "models:/ecg-classifier@champion", "--namespace", NS,
              "--upload", "s3://models/dry", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    isvc = yaml.safe_load(result.stdout)
    assert _storage(isvc) == "s3://models/dry/ecg-classifier/1"
    assert _stored_objects(s3_env, "models", "dry/ecg-classifier/1") == _local_files(
        local_version[1]
    )
    assert "uploaded" in result.stderr and "s3://models/dry/ecg-classifier/1" in result.stderr


def test_an_object_that_differs_after_upload_is_caught(
    s3_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecgflow.deploy import upload_folder

    (tmp_path / "model.onnx").write_bytes(b"onnx bytes")
    put = s3_env.put_object

    class Tampering:  # the store keeps other bytes than were sent (sent without ours)
        def __getattr__(self, name: str) -> Any:
            return getattr(s3_env, name)

        def put_object(self, **kwargs: Any) -> Any:
            kwargs.pop("ChecksumSHA256")  # same size, other bytes, their own SHA-256 kept
            kwargs.update(Body=b"ONNX BYTES", ContentLength=10, ChecksumAlgorithm="SHA256")
            return put(**kwargs)

    import ecgflow.io.storage.s3 as s3

    real = s3.S3Storage.__init__

    def init(self: Any, uri: str, **kwargs: Any) -> None:
        real(self, uri, **kwargs)
        self.client = Tampering()

    monkeypatch.setattr(s3.S3Storage, "__init__", init)
    with pytest.raises(EcgflowError, match=r"does not match .*model.onnx after the upload"):
        upload_folder(tmp_path, "s3://models/tampered")


@pytest.mark.parametrize("uri", ["models/x", "gs://models/x", "s3:///x", "s3://", "file:///tmp"])
def test_upload_refuses_what_is_not_an_s3_bucket(
    uri: str, local_version: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_version[0])
    result = CliRunner().invoke(
        app, ["deploy", "--model", "models:/ecg-classifier/1", "--upload", uri, "--dry-run",
              "--namespace", NS],
    )  # fmt: skip
    assert result.exit_code == 2 and f"--upload {uri}: expected s3://BUCKET/PREFIX" in result.output
    with pytest.raises(EcgflowError, match="not with --rollback"):
        deploy(None, NS, rollback=True, upload="s3://models/x", dry_run=True)
