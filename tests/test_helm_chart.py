"""helm/ecgflow renders valid, secret-free objects that agree with the rest of ecgflow.

Rendered offline with helm-python-sdk (``helm_python``: no helm binary, no cluster). For every
values set under ``helm/ecgflow/ci/`` the chart lints clean in strict mode and every rendered
object validates: core kinds with ``kubernetes-validate`` (always), InferenceServices and the
ClusterTrainingRuntime against the pinned strict CRD schemas in ../shared/schemas (skipped when
absent). On top of that the tests pin behaviour a schema cannot see: values.schema.json rejects
bad values with a message naming the field; ``existingSecret`` options render no Secret and
point every reference at the given name; an external database renders no PostgreSQL; the
pipeline runner's Role grants exactly its verbs; the registration Job runs ``ecgflow submit
--upload-only``; the InferenceService template (the one ``ecgflow deploy`` renders) matches
manifests/serving*/ and handles both canary modes; the ClusterTrainingRuntime equals
manifests/training/; image defaults are ecgflow.images'; and nothing rendered holds a credential.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from kube_objects import require_schemas, schema_errors
from test_manifests import credential_findings, hardening_problems, isvc_problems

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "ecgflow"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
MANIFESTS = ROOT / "manifests"
RELEASE, NAMESPACE = "ecgflow", "ml"
KUBE_VERSION = "v1.33.0"
ISVC_TEMPLATE = f"{CHART.name}/templates/inferenceservice.yaml"
# the API groups whose objects are validated against ../shared/schemas/strict
CRD_GROUPS = {"serving.kserve.io", "trainer.kubeflow.org"}
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
}
S3_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
S3_ANNOTATIONS = {
    "serving.kserve.io/s3-endpoint",
    "serving.kserve.io/s3-usehttps",
    "serving.kserve.io/s3-verifyssl",
    "serving.kserve.io/s3-region",
}
RUNNER_RULES = [
    {
        "apiGroups": ["trainer.kubeflow.org"],
        "resources": ["trainjobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
S3_ENDPOINT = "seaweedfs-s3.seaweedfs.svc:8333"
CLASSIFIER_URI = "s3://mlflow/7/models/m-feedface/artifacts"
GEM_URI = "s3://mlflow/8/0123abcd/artifacts/model"


# --- rendering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _ci(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _manifests(
    chart: helm.Chart, values: dict[str, Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Rendered objects by template path (NOTES.txt left out)."""
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return {
        path: [d for d in yaml.safe_load_all(text) if d]
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
    }


def _objects(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [obj for objs in _manifests(chart, values).values() for obj in objs]


def _of(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = _of(objects, kind, name)
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} rendered"
    return found[0]


@pytest.fixture(scope="module")
def ci_objects(chart: helm.Chart) -> dict[str, list[dict[str, Any]]]:
    """Every ci/*.yaml values set rendered once."""
    return {path.name: _objects(chart, _ci(path)) for path in CI_VALUES}


def _label(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _is_crd(obj: dict[str, Any]) -> bool:
    return obj["apiVersion"].rpartition("/")[0] in CRD_GROUPS


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _secret_ref(env: dict[str, Any]) -> tuple[str, str]:
    ref = env["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def _credentials(text: str, label: str) -> list[str]:
    """test_manifests' credential scan; a boolean (automountServiceAccountToken) is no token."""
    booleans = re.compile(r"(?m)^(\s*(?:- )?[\w.-]+:\s*)(?:true|false)\s*$")
    return credential_findings(booleans.sub(r"\1", text), label)


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs an object defines (InferenceService predictors and canaries included)."""
    kind = obj["kind"]
    if kind in {"Deployment", "StatefulSet", "Job"}:
        return [obj["spec"]["template"]["spec"]]
    if kind == "Pod":
        return [obj["spec"]]
    if kind == "InferenceService":
        return [obj["spec"]["predictor"]] + [c["predictor"] for c in obj["spec"].get("canary", [])]
    if kind == "ClusterTrainingRuntime":
        return [
            job["template"]["spec"]["template"]["spec"]
            for job in obj["spec"]["template"]["spec"]["replicatedJobs"]
        ]
    return []


def _mlflow(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _one(objects, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"][
        "containers"
    ]
    return container


def _isvc_values(**services: dict[str, Any]) -> dict[str, Any]:
    return {"s3": {"endpoint": S3_ENDPOINT}, "inferenceServices": services}


# --- the chart itself ----------------------------------------------------------------------------


def test_chart_is_v2_self_contained_and_versioned_like_ecgflow(chart: helm.Chart) -> None:
    import ecgflow

    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "ecgflow" == CHART.name
    assert meta["appVersion"] == ecgflow.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert not meta.get("dependencies") and chart.dependencies == []
    assert not (CHART / "charts").exists()
    assert (CHART / "README.md").is_file() and (CHART / "templates" / "NOTES.txt").is_file()
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "external-db-values.yaml",
        "existing-secrets-values.yaml",
        "gpu-canary-values.yaml",
    }


def test_image_defaults_are_ecgflow_images() -> None:
    from ecgflow import images

    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["images"]
    refs = {k: f"{values[k]['repository']}:{values[k]['tag']}" for k in ("base", "train", "serve")}
    assert refs == {
        "base": images.BASE_IMAGE,
        "train": images.TRAIN_IMAGE,
        "serve": images.SERVE_IMAGE,
    }


def test_rendered_images_come_from_the_image_values(chart: helm.Chart) -> None:
    from ecgflow import images

    objects = _objects(chart, _isvc_values(gem={"enabled": True, "storageUri": GEM_URI}))
    job = _one(objects, "Job")["spec"]["template"]["spec"]["containers"][0]
    runtime = _pod_specs(_one(objects, "ClusterTrainingRuntime"))[0]["containers"][0]
    predictor = _one(objects, "InferenceService")["spec"]["predictor"]["containers"][0]
    assert (job["image"], runtime["image"], predictor["image"]) == (
        images.BASE_IMAGE,
        images.TRAIN_IMAGE,
        images.SERVE_IMAGE,
    )
    assert _mlflow(objects)["image"] == "ghcr.io/mlflow/mlflow:v3.17.2-full"
    assert _one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "postgres:16"
    )
    changed = _objects(
        chart,
        {
            "images": {"serve": {"tag": "9.9.9"}},
            **_isvc_values(classifier={"enabled": True, "storageUri": CLASSIFIER_URI}),
        },
    )
    (container,) = _one(changed, "InferenceService")["spec"]["predictor"]["containers"]
    assert container["image"] == "ghcr.io/ecgflow/ecgflow-serve:9.9.9"


def _schema_nodes(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _schema_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_nodes(value, f"{path}/{i}")


def test_values_schema_is_closed_draft07_without_remote_refs(chart: helm.Chart) -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert chart.schema == schema
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    open_objects, remote_refs = [], []
    for path, node in _schema_nodes(schema):
        closed = node.get("additionalProperties") is False
        if isinstance(node.get("properties"), dict) and not closed:
            open_objects.append(path)
        if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#/"):
            remote_refs.append(path)
    assert open_objects == [] and remote_refs == []
    # values.yaml's defaults pass the same schema outside Helm, and every default key is in it
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(values)
    assert set(values) <= set(schema["properties"])


def test_the_registered_pipeline_is_one_of_the_catalog() -> None:
    from ecgflow.pipelines.catalog import PIPELINES  # lazy entries: imports no kfp

    names = list(PIPELINES.names())
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    register = schema["properties"]["pipelines"]["properties"]["register"]["properties"]
    assert register["pipeline"]["enum"] == names
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["pipelines"]["register"]["pipeline"] in names


# --- every ci values set -------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_lint_clean_in_strict_mode(values_file: Path) -> None:
    report = helm.lint(CHART, _ci(values_file), strict=True, kube_version=KUBE_VERSION)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert problems == []


def test_lint_reports_what_the_schema_rejects() -> None:
    report = helm.lint(
        CHART, {"inferenceServices": {"gem": {"canary": {"trafficPercent": 150}}}}, strict=True
    )
    assert any("trafficPercent" in e for e in report["errors"]), report


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_valid_core_objects(values_file: Path, ci_objects: dict) -> None:
    objects = ci_objects[values_file.name]
    core = [o for o in objects if not _is_crd(o)]
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding"} <= {
        o["kind"] for o in core
    }
    for obj in core:
        assert schema_errors(obj) == [], _label(obj)
        assert obj["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        assert "app.kubernetes.io/part-of" in obj["metadata"]["labels"], _label(obj)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_valid_custom_resources(values_file: Path, ci_objects: dict) -> None:
    require_schemas()
    crds = [o for o in ci_objects[values_file.name] if _is_crd(o)]
    assert any(o["kind"] == "ClusterTrainingRuntime" for o in crds)
    for obj in crds:
        assert schema_errors(obj) == [], _label(obj)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_no_credentials(values_file: Path, ci_objects: dict) -> None:
    objects = ci_objects[values_file.name]
    # the one Secret with data is PostgreSQL's generated password (random per render, see below)
    generated = [
        o for o in _of(objects, "Secret") if "helm.sh/hook" in o["metadata"]["annotations"]
    ]
    rest = [o for o in objects if o not in generated]
    text = yaml.safe_dump_all(rest)
    assert _credentials(text, values_file.name) == []
    assert _credentials(values_file.read_text(encoding="utf-8"), values_file.name) == []


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_every_pod_runs_as_non_root_without_privileges(values_file: Path, ci_objects: dict) -> None:
    pods = [(o, spec) for o in ci_objects[values_file.name] for spec in _pod_specs(o)]
    assert {o["kind"] for o, _ in pods} >= {"Deployment", "ClusterTrainingRuntime", "Pod"}
    for obj, spec in pods:
        pod_ctx = spec.get("securityContext", {})
        assert not any("hostPath" in v for v in spec.get("volumes", [])), _label(obj)
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), _label(obj)
        for container in spec["containers"]:
            ctx = container.get("securityContext", {})
            where = f"{_label(obj)} {container['name']}"
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not ctx.get("privileged"), where
            assert not container.get("image", "").endswith(":latest"), where
        # read-only root with /tmp on a volume, seccomp RuntimeDefault, no capabilities, limits
        assert hardening_problems(_label(obj), spec) == []


def test_the_values_schema_refuses_to_weaken_the_container_context(chart: helm.Chart) -> None:
    for weaker in (
        {"readOnlyRootFilesystem": False},
        {"allowPrivilegeEscalation": True},
        {"capabilities": {"drop": ["NET_RAW"]}},
    ):
        with pytest.raises(helm.HelmValuesError, match="containerSecurityContext"):
            chart.validate_schema({"containerSecurityContext": weaker})


# --- MLflow authentication and NetworkPolicies ---------------------------------------------------


def test_mlflow_requires_basic_auth_with_the_admin_from_a_generated_secret(chart: helm.Chart):
    objects = _objects(chart)
    mlflow = _mlflow(objects)
    args = mlflow["args"]
    assert args[args.index("--app-name") + 1] == "basic-auth"
    env = _env(mlflow)
    secret = f"{RELEASE}-mlflow-auth"
    assert _secret_ref(env["MLFLOW_AUTH_ADMIN_USERNAME"]) == (secret, "MLFLOW_TRACKING_USERNAME")
    assert _secret_ref(env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == (secret, "MLFLOW_TRACKING_PASSWORD")
    assert _secret_ref(env["MLFLOW_FLASK_SERVER_SECRET_KEY"])[0] == secret
    generated = _one(objects, "Secret", secret)
    assert generated["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"
    assert generated["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(generated["data"]) == {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }
    # the ini the auth app reads: users in the bundled PostgreSQL, no credential in it
    config = _one(objects, "ConfigMap", f"{RELEASE}-mlflow-auth")["data"]["basic_auth.ini"]
    mount = {m["name"]: m["mountPath"] for m in mlflow["volumeMounts"]}["auth-config"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == f"{mount}/basic_auth.ini"
    assert f"database_uri = postgresql://mlflow@{RELEASE}-postgresql:5432/mlflow" in config
    assert "default_permission = READ" in config and "password" not in config
    # the uploaded pipeline's steps get the credentials from that Secret
    (job,) = _one(objects, "Job")["spec"]["template"]["spec"]["containers"]
    assert _env(job)["ECGFLOW_MLFLOW_SECRET"]["value"] == secret
    assert "MLFLOW_TRACKING_PASSWORD" not in _env(job)  # the Job itself never calls MLflow


def test_mlflow_auth_uses_an_existing_secret_and_can_be_turned_off(ci_objects, chart) -> None:
    objects = ci_objects["existing-secrets-values.yaml"]
    env = _env(_mlflow(objects))
    assert _secret_ref(env["MLFLOW_AUTH_ADMIN_PASSWORD"])[0] == "team-mlflow-auth"
    (job,) = _one(objects, "Job")["spec"]["template"]["spec"]["containers"]
    assert _env(job)["ECGFLOW_MLFLOW_SECRET"]["value"] == "team-mlflow-auth"
    config = _one(objects, "ConfigMap")["data"]["basic_auth.ini"]
    assert "default_permission = NO_PERMISSIONS" in config
    external = _one(ci_objects["external-db-values.yaml"], "ConfigMap")["data"]["basic_auth.ini"]
    assert "database_uri = postgresql://mlflow_auth@db.example.internal" in external
    off = _objects(chart, {"mlflow": {"auth": {"enabled": False}}})
    assert "--app-name" not in _mlflow(off)["args"]
    assert _of(off, "ConfigMap") == [] and _of(off, "Secret", f"{RELEASE}-mlflow-auth") == []
    with pytest.raises(helm.HelmValuesError, match="databaseUri"):
        bad = "postgresql://u:pw@db/x"  # fake credential
        chart.validate_schema({"mlflow": {"auth": {"databaseUri": bad}}})


def _admits(policy: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    """Whether ``policy`` lets a pod with ``labels`` in ``namespace`` connect (NetworkPolicy
    peer semantics: a peer without namespaceSelector means the policy's own namespace)."""
    for rule in policy["spec"].get("ingress", []):
        for peer in rule.get("from", []):
            pods = peer.get("podSelector", {}).get("matchLabels", {})
            if "namespaceSelector" in peer:
                wanted = peer["namespaceSelector"].get("matchLabels", {})
                ns_ok = wanted.get("kubernetes.io/metadata.name", namespace) == namespace
            else:
                ns_ok = namespace == policy["metadata"]["namespace"]
            if ns_ok and all(labels.get(k) == v for k, v in pods.items()):
                return True
    return False


def test_network_policies_admit_only_the_ecgflow_clients(chart: helm.Chart) -> None:
    values = {"kfp": {"namespace": "team-ecg"}, "networkPolicy": {"s3": {"enabled": True}}}
    objects = _objects(chart, values)
    for policy in _of(objects, "NetworkPolicy"):
        assert schema_errors(policy) == [], _label(policy)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
    mlflow_policy = _one(objects, "NetworkPolicy", f"{RELEASE}-mlflow")
    db_policy = _one(objects, "NetworkPolicy", f"{RELEASE}-postgresql")
    s3_policy = _one(objects, "NetworkPolicy", f"{RELEASE}-s3-clients")
    deployment = _one(objects, "Deployment", f"{RELEASE}-mlflow")
    assert mlflow_policy["spec"]["podSelector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    mlflow_pod = deployment["spec"]["template"]["metadata"]["labels"]
    step = {"pipelines.kubeflow.org/v2_component": "true"}
    runtime = _one(objects, "ClusterTrainingRuntime")
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    trainer = job["template"]["spec"]["template"]["metadata"]["labels"]
    test_pod = _one(objects, "Pod")["metadata"]["labels"]
    isvc = _objects(
        chart,
        {**values, **_isvc_values(classifier={"enabled": True, "storageUri": CLASSIFIER_URI})},
    )
    serving = _one(isvc, "InferenceService")["spec"]["predictor"]["labels"]
    # MLflow: pipeline steps and trainer pods in KFP's namespace, the helm test pod
    assert _admits(mlflow_policy, "team-ecg", step)
    assert _admits(mlflow_policy, "team-ecg", trainer)
    assert _admits(mlflow_policy, NAMESPACE, test_pod)
    assert not _admits(mlflow_policy, "other", step)
    assert not _admits(mlflow_policy, NAMESPACE, {"app": "anything"})
    assert not _admits(mlflow_policy, "team-ecg", serving)  # serving reads S3, not MLflow
    # PostgreSQL: MLflow only
    assert _admits(db_policy, NAMESPACE, mlflow_pod)
    assert not _admits(db_policy, "team-ecg", step) and not _admits(db_policy, NAMESPACE, test_pod)
    # S3 (in its own namespace): MLflow, steps, trainers, serving pods; nobody else
    assert s3_policy["metadata"]["namespace"] == "seaweedfs"
    for namespace, labels in [(NAMESPACE, mlflow_pod), ("team-ecg", step), ("team-ecg", trainer),
                              (NAMESPACE, serving)]:  # fmt: skip
        assert _admits(s3_policy, namespace, labels), labels
    assert not _admits(s3_policy, "seaweedfs", {"app": "anything"})
    assert not _admits(s3_policy, "other", serving)
    assert _of(_objects(chart, {"networkPolicy": {"enabled": False}}), "NetworkPolicy") == []


def test_pipeline_steps_get_the_mlflow_credentials_the_job_names(
    ci_objects: dict, tmp_path: Path, monkeypatch
) -> None:
    """The registration Job's env, compiled: every step reads the user from the Secret."""
    from ecgflow.config import load_config
    from ecgflow.pipeline_runner import compile_all

    (job,) = _one(ci_objects["default-values.yaml"], "Job")["spec"]["template"]["spec"][
        "containers"
    ]
    for name, entry in _env(job).items():
        if name.startswith("ECGFLOW_"):
            monkeypatch.setenv(name, entry["value"])
    (path,) = compile_all(tmp_path, load_config(), names=["training"])
    spec, platform = [d for d in yaml.safe_load_all(path.read_text()) if d]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    for settings in executors.values():
        found = {
            s["secretName"]: {k["envVar"] for k in s["keyToEnv"]} for s in settings["secretAsEnv"]
        }
        assert found[f"{RELEASE}-mlflow-auth"] == {
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
        }


def test_default_values_render_without_any_input(chart: helm.Chart) -> None:
    """`ecgflow deploy` renders the chart with only its own overrides: defaults must render."""
    objects = _objects(chart)
    assert _of(objects, "InferenceService") == []  # enabled per service, by deploy or values
    assert _one(objects, "Deployment", f"{RELEASE}-mlflow")
    assert _one(objects, "ClusterTrainingRuntime", "ecgflow-torch")


# --- bad values fail the schema, naming the field ------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"mlfow": {}}, "additional properties 'mlfow' not allowed"),
        ({"inferenceServices": {"gem": {"canary": {"trafic": 5}}}}, "'trafic' not allowed"),
        (
            {"inferenceServices": {"classifier": {"canary": {"trafficPercent": "20"}}}},
            "/inferenceServices/classifier/canary/trafficPercent': got string, want integer",
        ),
        (
            {"inferenceServices": {"gem": {"canary": {"trafficPercent": 101}}}},
            "/inferenceServices/gem/canary/trafficPercent': maximum: got 101, want 100",
        ),
        (
            {"inferenceServices": {"gem": {"canary": {"trafficPercent": -1}}}},
            "/inferenceServices/gem/canary/trafficPercent': minimum",
        ),
        ({"inferenceServices": {"llm": {"enabled": True}}}, "'llm' not allowed"),
        (
            {
                "inferenceServices": {
                    "classifier": {"storageUri": "models:/ecg-classifier@champion"}
                }
            },
            "/inferenceServices/classifier/storageUri'",
        ),
        ({"s3": {"endpoint": "http://minio:9000"}}, "/s3/endpoint'"),
        ({"s3": {"existingSecret": "Not_A_Name"}}, "/s3/existingSecret'"),
        ({"images": {"serve": {"tag": "latest"}}}, "/images/serve/tag'"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot'"),
        ({"pipelines": {"register": {"pipeline": "trainin"}}}, "/pipelines/register/pipeline'"),
        ({"postgresql": {"enabled": "no"}}, "/postgresql/enabled': got string, want boolean"),
        ({"serving": {"deploymentMode": "Raw"}}, "/serving/deploymentMode'"),
    ],
)
def test_bad_values_fail_the_schema_naming_the_field(
    chart: helm.Chart, values: dict[str, Any], expected: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        chart.validate_schema(values)
    assert expected in str(info.value)
    with pytest.raises(helm.HelmValuesError):  # render (install, deploy) checks the same schema
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"inferenceServices": {"gem": {"enabled": True}}}, "inferenceServices.gem.storageUri"),
        (
            {"postgresql": {"enabled": False}},
            "mlflow.externalDatabase.existingSecret",
        ),
        ({"s3": {"accessKeyId": "only-one-half"}}, "s3.secretAccessKey"),
        (
            {
                "serving": {"deploymentMode": "Standard"},
                "inferenceServices": {
                    "gem": {"enabled": True, "storageUri": GEM_URI, "canary": {"enabled": True}}
                },
            },
            "inferenceServices.gem.canary.storageUri",
        ),
        (
            {
                "inferenceServices": {
                    "classifier": {
                        "enabled": True,
                        "storageUri": CLASSIFIER_URI,
                        "minReplicas": 3,
                        "maxReplicas": 1,
                    }
                }
            },
            "maxReplicas",
        ),
    ],
)
def test_inconsistent_values_fail_rendering_with_a_readable_message(
    chart: helm.Chart, values: dict[str, Any], expected: str
) -> None:
    chart.validate_schema(values)  # each value is fine on its own
    with pytest.raises(helm.HelmRenderError) as info:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert expected in str(info.value)


# --- secrets -------------------------------------------------------------------------------------


def test_existing_secrets_render_no_secret_and_every_reference_uses_them(
    ci_objects: dict,
) -> None:
    objects = ci_objects["existing-secrets-values.yaml"]
    values = _ci(CHART / "ci" / "existing-secrets-values.yaml")
    assert _of(objects, "Secret") == []
    serving = _one(objects, "ServiceAccount", "ecgflow-serving")
    assert serving["secrets"] == [{"name": "team-s3"}]
    env = _env(_mlflow(objects))
    assert _secret_ref(env["AWS_ACCESS_KEY_ID"]) == ("team-s3", "AWS_ACCESS_KEY_ID")
    assert _secret_ref(env["AWS_SECRET_ACCESS_KEY"]) == ("team-s3", "AWS_SECRET_ACCESS_KEY")
    assert _secret_ref(env["PGPASSWORD"]) == ("team-mlflow-db", "postgres-password")
    (db,) = _one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert _secret_ref(_env(db)["POSTGRES_PASSWORD"]) == ("team-mlflow-db", "postgres-password")
    (job,) = _one(objects, "Job")["spec"]["template"]["spec"]["containers"]
    assert _secret_ref(_env(job)["KFP_TOKEN"]) == ("kfp-token", "token")
    # the IRSA annotation and KServe's S3 settings land on the ServiceAccount
    annotations = serving["metadata"]["annotations"]
    assert (
        annotations["eks.amazonaws.com/role-arn"]
        == (values["serving"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"])
    )
    assert set(annotations) >= S3_ANNOTATIONS


def test_s3_secret_from_values_carries_the_keys_and_kserve_annotations(chart: helm.Chart) -> None:
    key_id, key = "test-" + "id", "test-" + "key"  # built here: no key-shaped literal in the file
    objects = _objects(
        chart,
        {"s3": {"endpoint": S3_ENDPOINT, "accessKeyId": key_id, "secretAccessKey": key}},
    )
    secret = _one(objects, "Secret", "ecgflow-s3")
    assert set(secret["data"]) == S3_KEYS
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == S3_ENDPOINT
    assert (
        annotations["serving.kserve.io/s3-usehttps"],
        annotations["serving.kserve.io/s3-verifyssl"],
    ) == ("0", "1")
    assert _one(objects, "ServiceAccount", "ecgflow-serving")["secrets"] == [{"name": "ecgflow-s3"}]
    env = _env(_mlflow(objects))
    assert _secret_ref(env["AWS_SECRET_ACCESS_KEY"]) == ("ecgflow-s3", "AWS_SECRET_ACCESS_KEY")
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"http://{S3_ENDPOINT}"


def test_without_s3_keys_nothing_references_a_missing_secret(chart: helm.Chart) -> None:
    objects = _objects(chart, {"s3": {"endpoint": S3_ENDPOINT}})
    assert sorted(s["metadata"]["name"] for s in _of(objects, "Secret")) == [
        f"{RELEASE}-mlflow-auth",  # both generated: MLflow's admin and PostgreSQL's password
        f"{RELEASE}-postgresql",
    ]
    serving = _one(objects, "ServiceAccount", "ecgflow-serving")
    assert "secrets" not in serving
    assert set(serving["metadata"]["annotations"]) >= S3_ANNOTATIONS  # IAM roles read them here
    assert not S3_KEYS & set(_env(_mlflow(objects)))


def test_generated_postgres_password_is_random_and_never_regenerated_on_upgrade(
    chart: helm.Chart,
) -> None:
    def password() -> tuple[str, dict[str, str]]:
        secret = _one(_objects(chart), "Secret", f"{RELEASE}-postgresql")
        return secret["data"]["password"], secret["metadata"]["annotations"]

    (first, annotations), (second, _) = password(), password()
    assert first != second  # randAlphaNum at install: nothing fixed in the chart
    assert annotations["helm.sh/hook"] == "pre-install"  # upgrades keep the installed one
    assert annotations["helm.sh/resource-policy"] == "keep"
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert _credentials(values, "values.yaml") == []


def test_chart_sources_hold_no_credentials() -> None:
    files = [CHART / "values.yaml", *CI_VALUES, CHART / "README.md"]
    findings = []
    for path in files:
        findings += _credentials(path.read_text(encoding="utf-8"), path.name)
    assert findings == []
    templates = "".join(
        p.read_text(encoding="utf-8") for p in (CHART / "templates").rglob("*") if p.is_file()
    )
    # a Secret's data only ever comes from values or randAlphaNum, never from a literal
    data = re.findall(r"(?m)^\s+(AWS_\w+|\{\{ \$auth\.passwordKey \}\}): (.*)$", templates)
    assert len(data) == 3  # the S3 Secret's two keys, the generated password
    for key, value in data:
        assert value.startswith("{{ .Values.s3.") or "randAlphaNum" in value, key


# --- MLflow and its backend store ----------------------------------------------------------------


def test_mlflow_serves_artifacts_from_s3_with_health_probes(ci_objects: dict) -> None:
    objects = ci_objects["default-values.yaml"]
    container = _mlflow(objects)
    args = container["args"]
    assert container["command"] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == "s3://mlflow"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    env = _env(container)
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"http://{S3_ENDPOINT}"
    assert "MLFLOW_S3_IGNORE_TLS" not in env
    # MLflow 3 rejects unknown Host headers: the Service's in-cluster names must be allowed
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    service = _one(objects, "Service", f"{RELEASE}-mlflow")
    port = service["spec"]["ports"][0]["port"]
    for host in (
        f"{RELEASE}-mlflow",
        f"{RELEASE}-mlflow:{port}",
        f"{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:{port}",
    ):
        assert host in hosts
    assert "*" not in hosts
    assert (
        service["spec"]["selector"].items()
        <= (
            _one(objects, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["metadata"][
                "labels"
            ]
        ).items()
    )

    https = _env(_mlflow(ci_objects["gpu-canary-values.yaml"]))
    assert https["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"https://{S3_ENDPOINT}"
    assert https["MLFLOW_S3_IGNORE_TLS"]["value"] == "true"
    prefixed = _mlflow(ci_objects["external-db-values.yaml"])["args"]
    assert "s3://ml-artifacts/mlflow" in prefixed


def test_bundled_postgres_is_a_statefulset_with_a_pvc_behind_mlflow(ci_objects: dict) -> None:
    objects = ci_objects["default-values.yaml"]
    sts = _one(objects, "StatefulSet", f"{RELEASE}-postgresql")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["runAsNonRoot"]
    (db,) = pod["containers"]
    assert {m["mountPath"] for m in db["volumeMounts"]} >= {"/var/lib/postgresql/data"}
    assert _env(db)["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    env = _env(_mlflow(objects))
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri == f"postgresql://mlflow@{RELEASE}-postgresql:5432/mlflow"  # no password in it
    assert _secret_ref(env["PGPASSWORD"]) == (f"{RELEASE}-postgresql", "password")
    assert _one(objects, "Service", f"{RELEASE}-postgresql")["spec"]["ports"][0]["port"] == 5432


def test_external_database_renders_no_postgres(ci_objects: dict) -> None:
    objects = ci_objects["external-db-values.yaml"]
    assert not [o for o in objects if "postgresql" in o["metadata"]["name"]]
    assert _of(objects, "StatefulSet") == []
    assert [o["metadata"]["name"] for o in _of(objects, "Secret")] == [f"{RELEASE}-mlflow-auth"]
    env = _env(_mlflow(objects))
    assert _secret_ref(env["MLFLOW_BACKEND_STORE_URI"]) == ("mlflow-db", "uri")
    assert "PGPASSWORD" not in env


def test_helm_test_pod_gets_mlflow_health_through_the_service(ci_objects: dict) -> None:
    objects = ci_objects["default-values.yaml"]
    pod = _one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    service = _one(objects, "Service", f"{RELEASE}-mlflow")
    url = f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    assert container["command"][-1] == url
    assert '"/health"' in container["command"][2]


# --- pipelines: RBAC, registration, training runtime ---------------------------------------------


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_pipeline_runner_role_grants_exactly_its_verbs(values_file: Path, ci_objects: dict) -> None:
    objects = ci_objects[values_file.name]
    assert _of(objects, "ClusterRole") == [] and _of(objects, "ClusterRoleBinding") == []
    (role,) = _of(objects, "Role")
    assert role["rules"] == RUNNER_RULES
    sa = _one(objects, "ServiceAccount", "ecgflow-pipeline-runner")
    binding = _one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]


def test_registration_job_uploads_the_pipeline_after_install_and_upgrade(
    ci_objects: dict,
) -> None:
    job = _one(ci_objects["default-values.yaml"], "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"] + container["args"]
    assert command[:3] == ["ecgflow", "submit", "--upload-only"]
    assert (
        command[command.index("--host") + 1] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    )
    assert command[command.index("--pipeline") + 1] == "training"
    assert "--namespace" not in command and "KFP_TOKEN" not in _env(container)
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False

    (team,) = _one(ci_objects["existing-secrets-values.yaml"], "Job")["spec"]["template"]["spec"][
        "containers"
    ]
    assert team["args"][team["args"].index("--namespace") + 1] == "team-ecg"
    assert (
        team["args"][team["args"].index("--host") + 1]
        == "https://kubeflow.example.internal/pipeline"
    )
    assert "--token" not in team["args"]  # the token travels as KFP_TOKEN, never in args
    assert _of(ci_objects["gpu-canary-values.yaml"], "Job") == []  # register.enabled: false


def test_the_uploaded_pipeline_uses_the_charts_images_mlflow_and_runtime(
    ci_objects: dict,
) -> None:
    """The Job's env reaches ecgflow.config.ENV_OVERRIDES: compiled into the pipeline."""
    from ecgflow.config import ENV_OVERRIDES
    from ecgflow.images import BASE_IMAGE, TRAIN_IMAGE

    (container,) = _one(ci_objects["default-values.yaml"], "Job")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {name: e.get("value") for name, e in _env(container).items()}
    assert env["ECGFLOW_IMAGE"] == BASE_IMAGE and env["ECGFLOW_TRAIN_IMAGE"] == TRAIN_IMAGE
    assert env["ECGFLOW_TRAINING_RUNTIME"] == "ecgflow-torch"
    assert env["ECGFLOW_TRACKING_URI"].startswith("http://ecgflow-mlflow.")
    assert {k for k in env if k.startswith("ECGFLOW_")} <= set(ENV_OVERRIDES)
    (team,) = _one(ci_objects["existing-secrets-values.yaml"], "Job")["spec"]["template"]["spec"][
        "containers"
    ]
    team_env = {name: e.get("value") for name, e in _env(team).items()}
    values = _ci(CHART / "ci" / "existing-secrets-values.yaml")
    assert team_env["ECGFLOW_S3_SECRET"] == values["s3"]["existingSecret"]
    if values["s3"].get("endpoint"):
        assert team_env["ECGFLOW_S3_ENDPOINT_URL"].endswith("://" + values["s3"]["endpoint"])


def _strip_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    labels = obj["metadata"]["labels"]
    for key in HELM_LABELS:
        labels.pop(key, None)
    return obj


def test_training_runtime_equals_the_kustomize_manifest(chart: helm.Chart) -> None:
    path = MANIFESTS / "training" / "clustertrainingruntime.yaml"
    (manifest,) = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    (kustomization,) = yaml.safe_load_all(
        (MANIFESTS / "training" / "kustomization.yaml").read_text(encoding="utf-8")
    )
    assert kustomization["resources"] == ["clustertrainingruntime.yaml"]
    rendered = _one(_objects(chart), "ClusterTrainingRuntime")
    assert set(rendered["metadata"]["labels"]) >= HELM_LABELS
    assert _strip_helm_labels(rendered) == manifest


def test_training_runtime_is_what_the_trainjobs_reference(ci_objects: dict) -> None:
    from ecgflow.k8s.training_step import TrainJobParams

    runtime = _one(ci_objects["default-values.yaml"], "ClusterTrainingRuntime")
    assert "namespace" not in runtime["metadata"]  # cluster-scoped
    assert runtime["metadata"]["name"] == TrainJobParams().runtime == "ecgflow-torch"
    spec = runtime["spec"]
    assert spec["mlPolicy"]["numNodes"] == 1 and "torch" in spec["mlPolicy"]
    (job,) = spec["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    assert job["template"]["metadata"]["labels"] == {
        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
    }
    pod = job["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "node"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_training_runtime_validates_against_the_pinned_trainer_schema(chart: helm.Chart) -> None:
    require_schemas()
    runtime = _one(_objects(chart), "ClusterTrainingRuntime")
    assert schema_errors(runtime) == []
    # the pinned runtime CRD moved numProcPerNode to the TrainJob: the strict schema refuses it
    broken = copy.deepcopy(runtime)
    broken["spec"]["mlPolicy"]["torch"]["numProcPerNode"] = 1
    assert any("numProcPerNode" in e for e in schema_errors(broken))


# --- InferenceServices (templates/inferenceservice.yaml, rendered by ecgflow deploy) -------------


def _manifest_isvc(folder: str) -> dict[str, Any]:
    text = (MANIFESTS / folder / "inferenceservice.yaml").read_text(encoding="utf-8")
    (isvc,) = [d for d in yaml.safe_load_all(text) if d]
    return isvc


@pytest.mark.parametrize(("key", "folder"), [("classifier", "serving"), ("gem", "serving-gem")])
def test_isvc_template_renders_the_kustomize_manifests_for_the_same_uri(
    chart: helm.Chart, key: str, folder: str
) -> None:
    manifest = _manifest_isvc(folder)
    (container,) = manifest["spec"]["predictor"]["containers"]
    uri = _env(container)["STORAGE_URI"]["value"]
    rendered = _manifests(chart, _isvc_values(**{key: {"enabled": True, "storageUri": uri}}))
    (isvc,) = rendered[ISVC_TEMPLATE]
    assert isvc_problems(isvc) == []
    # the chart adds an explicit command (the serve image's ENTRYPOINT) and the pull policy
    (chart_container,) = isvc["spec"]["predictor"]["containers"]
    assert chart_container.pop("command") == ["ecgflow", "serve"]
    assert chart_container.pop("imagePullPolicy") == "IfNotPresent"
    assert isvc["spec"] == manifest["spec"]
    assert isvc["metadata"]["name"] == manifest["metadata"]["name"]
    assert isvc["metadata"]["annotations"] == manifest["metadata"]["annotations"]
    assert manifest["metadata"]["labels"].items() <= isvc["metadata"]["labels"].items()


def test_isvc_template_serves_one_service_with_deploy_overrides(chart: helm.Chart) -> None:
    """What `ecgflow deploy` does: one service on, its storageUri and canary percent set."""
    values = {
        "inferenceServices": {
            "gem": {
                "enabled": True,
                "storageUri": GEM_URI,
                "canary": {"enabled": True, "trafficPercent": 30},
            }
        }
    }
    rendered = _manifests(chart, values)
    assert [p for p, objs in rendered.items() if _of(objs, "InferenceService")] == [ISVC_TEMPLATE]
    (isvc,) = rendered[ISVC_TEMPLATE]
    assert isvc["metadata"] | {"labels": None, "annotations": None} == {
        "name": "ecg-gem",
        "namespace": NAMESPACE,
        "labels": None,
        "annotations": None,
    }
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 30 and "canary" not in isvc["spec"]
    (container,) = predictor["containers"]
    assert _env(container)["STORAGE_URI"]["value"] == GEM_URI
    gpu = container["resources"]
    assert gpu["requests"]["nvidia.com/gpu"] == gpu["limits"]["nvidia.com/gpu"] == "1"
    assert "serving.kserve.io/deploymentMode" not in isvc["metadata"]["annotations"]


def test_standard_mode_canary_uses_spec_canary_with_the_candidate(ci_objects: dict) -> None:
    (isvc,) = _of(ci_objects["standard-canary-values.yaml"], "InferenceService")
    values = _ci(CHART / "ci" / "standard-canary-values.yaml")["inferenceServices"]["gem"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    predictor = isvc["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor  # Knative-only
    assert _env(predictor["containers"][0])["STORAGE_URI"]["value"] == values["storageUri"]
    (canary,) = isvc["spec"]["canary"]
    assert canary["trafficPercent"] == values["canary"]["trafficPercent"]
    assert (
        _env(canary["predictor"]["containers"][0])["STORAGE_URI"]["value"]
        == (values["canary"]["storageUri"])
    )
    stable = {k: v for k, v in predictor.items() if k != "containers"}
    assert {k: v for k, v in canary["predictor"].items() if k != "containers"} == stable


def test_knative_mode_canary_sets_canary_traffic_percent(ci_objects: dict) -> None:
    isvcs = {
        i["metadata"]["name"]: i
        for i in _of(ci_objects["gpu-canary-values.yaml"], "InferenceService")
    }
    assert set(isvcs) == {"ecg-classifier", "ecg-gem"}
    assert isvcs["ecg-classifier"]["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert isvcs["ecg-gem"]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    for isvc in isvcs.values():
        assert "canary" not in isvc["spec"]
        assert isvc_problems(isvc) == []
    gem = isvcs["ecg-gem"]["spec"]["predictor"]
    assert gem["tolerations"][0]["key"] == "nvidia.com/gpu"
    # without canary.enabled, no traffic split at all
    (plain,) = _of(ci_objects["existing-secrets-values.yaml"], "InferenceService")
    assert "canaryTrafficPercent" not in plain["spec"]["predictor"]


def test_only_the_isvc_template_renders_inference_services(chart: helm.Chart) -> None:
    sources = {t["name"]: t["data"] for t in chart.templates}
    assert ISVC_TEMPLATE.removeprefix(f"{CHART.name}/") in sources
    defining = [n for n, text in sources.items() if "kind: InferenceService" in text]
    assert defining == ["templates/inferenceservice.yaml"]


def test_readme_documents_every_inference_service_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert "templates/inferenceservice.yaml" in readme
    for key, service in values["inferenceServices"].items():
        for field, value in service.items():
            documented = [f"{field}.{sub}" for sub in value] if field == "canary" else [field]
            for name in documented:
                assert f"`{name}`" in readme, f"inferenceServices.{key}.{name} undocumented"
    for platform in ("Kubeflow Pipelines", "Kubeflow Trainer", "KServe", "S3"):
        assert platform in readme


def test_notes_tell_how_to_reach_mlflow_and_what_to_run_next(chart: helm.Chart) -> None:
    notes = chart.render(
        _ci(CHART / "ci" / "gpu-canary-values.yaml"), name=RELEASE, namespace=NAMESPACE
    )[f"{CHART.name}/templates/NOTES.txt"]
    assert f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000" in notes
    assert f"port-forward svc/{RELEASE}-mlflow" in notes
    assert "ecgflow submit" in notes and "ecgflow deploy" in notes
    assert "ecg-classifier" in notes and "ecg-gem" in notes
    default_notes = chart.render({}, name=RELEASE, namespace=NAMESPACE)[
        f"{CHART.name}/templates/NOTES.txt"
    ]
    assert "WARNING: no S3 credentials" in default_notes
