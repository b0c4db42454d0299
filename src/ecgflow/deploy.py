"""``ecgflow deploy``: put a registered model version behind its KServe InferenceService.

1. The version (``models:/NAME@ALIAS`` or ``models:/NAME/N``) is looked up in MLflow and its
   artifact location becomes the ``storageUri`` KServe's storage initializer downloads
   (``s3://…``; a proxied ``mlflow-artifacts:/…`` location is mapped onto the tracking
   server's ``--artifacts-destination``: the chart's ``s3.bucket``/``s3.prefix`` unless given).
2. The InferenceService is rendered from the Helm chart's own template
   (``helm/ecgflow/templates/inferenceservice.yaml``) with the chart values you installed
   with, only that service enabled: the object ``ecgflow deploy`` applies is the one
   ``helm install`` would make.
3. It is applied by server-side apply under one field manager (``ecgflow-deploy``), so
   let either the chart (``inferenceServices.*.enabled``) or ``ecgflow deploy`` own a
   service, not both. The previous model is kept in annotations for ``--rollback``.
4. It waits for the ``Ready`` condition of the new generation and returns the URL.

A canary (``--canary PCT``) follows the chart: in Knative mode the new model takes PCT % of
the traffic through ``canaryTrafficPercent``; in Standard mode ``spec.canary`` serves the
new model beside the current one.

A version whose files are on this machine (the embedded store ``ecgflow run`` makes: SQLite and
local folders) is out of KServe's reach: ``--upload s3://BUCKET/PREFIX`` copies its folder to
``s3://BUCKET/PREFIX/NAME/VERSION/`` with the configured S3 credentials (the ``AWS_*``
environment, as for datasets), checks every object, and deploys from there.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yaml

from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

FIELD_MANAGER = "ecgflow-deploy"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
TEMPLATE = "templates/inferenceservice.yaml"
#: where the version being served and the one before it are recorded on the object
MODEL = "ecgflow.io/model"
STORAGE = "ecgflow.io/storage-uri"
PREVIOUS_MODEL = "ecgflow.io/previous-model"
PREVIOUS_STORAGE = "ecgflow.io/previous-storage-uri"
#: storage URI schemes KServe's storage initializer downloads
KSERVE_SCHEMES = ("s3://", "gs://", "https://", "http://", "pvc://", "hf://", "oci://")
STANDARD_MODES = ("Standard", "RawDeployment")
#: where a user whose files are local is pointed
UPLOAD_HINT = (
    "pass --upload s3://BUCKET/PREFIX to copy them to S3 with the configured credentials "
    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) and deploy from there, or "
    "register models on the services stack, whose MLflow keeps them in S3 "
    "('ecgflow services up', then 'ecgflow run --stack services')"
)


@dataclass(frozen=True)
class DeployTarget:
    """A registered model version and where KServe reads it from."""

    name: str
    version: str
    kind: str  # "classifier" or "gem": the chart's inferenceServices key
    storage_uri: str

    @property
    def model_uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"


def default_chart() -> Path:
    """The chart beside this source tree, or ``$ECGFLOW_CHART``."""
    return Path(
        os.environ.get("ECGFLOW_CHART") or Path(__file__).resolve().parents[2] / "helm" / "ecgflow"
    )


def storage_uri(location: str, artifacts_destination: str | None = None) -> str:
    """The URI KServe downloads for an MLflow artifact ``location``."""
    if location.startswith("mlflow-artifacts:"):
        if not artifacts_destination:
            raise EcgflowError(
                f"the model's files are at {location}, proxied by the MLflow server: pass "
                "--artifacts-destination (the server's --artifacts-destination, s3://…) so "
                "KServe can download them"
            )
        path = location.removeprefix("mlflow-artifacts:").lstrip("/")
        if location.startswith("mlflow-artifacts://"):  # mlflow-artifacts://HOST/PATH
            path = path.split("/", 1)[1] if "/" in path else ""
        return f"{artifacts_destination.rstrip('/')}/{path}"
    if location.startswith(KSERVE_SCHEMES):
        return location
    raise EcgflowError(
        f"the model's files are at {location}, which KServe's storage initializer cannot "
        f"download (it reads {', '.join(KSERVE_SCHEMES)}): {UPLOAD_HINT}"
    )


def chart_artifacts_destination(values: dict[str, Any] | None, chart: Path | None = None) -> str:
    """Where the chart's MLflow server keeps proxied artifacts: ``s3://BUCKET[/PREFIX]``."""
    import helm_python as helm

    with helm.Chart.load(Path(chart or default_chart())) as loaded:
        s3 = loaded.merge_values(copy.deepcopy(values or {}))["s3"]
    prefix = str(s3.get("prefix") or "").strip("/")
    return f"s3://{s3['bucket']}" + (f"/{prefix}" if prefix else "")


def resolve_target(
    model: str, artifacts_destination: str | None = None, storage: str | None = None
) -> DeployTarget:
    """Look ``model`` up in MLflow (see the module docstring).

    With ``storage`` (the version's files, already known) a ``models:/NAME/VERSION`` needs no
    registry at all.
    """
    from ecgflow.registry import KIND_TAG, _client, model_version

    ref = model.removeprefix("models:/")
    name, _, number = ref.rpartition("/")
    if storage and ref != model and name and number.isdigit():
        if not storage.startswith(KSERVE_SCHEMES):
            raise EcgflowError(f"--storage-uri {storage}: KServe reads {', '.join(KSERVE_SCHEMES)}")
        return DeployTarget(name, number, _kind_of(name), storage)
    version = model_version(model)
    location = _client().get_model_version_download_uri(version.name, version.version)
    kind = (version.tags or {}).get(KIND_TAG) or _kind_of(version.name)
    return DeployTarget(
        version.name, str(version.version), kind, storage_uri(location, artifacts_destination)
    )


@dataclass(frozen=True)
class Uploaded:
    """One file ``--upload`` copied, as S3 reported it back."""

    rel: str
    size: int
    sha256: str  # base64, as S3's ChecksumSHA256


def upload_destination(upload: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of an ``--upload s3://BUCKET[/PREFIX]`` URI."""
    parts = urlsplit(upload)
    if parts.scheme.lower() != "s3" or not parts.netloc or "@" in parts.netloc:
        raise EcgflowError(
            f"--upload {upload}: expected s3://BUCKET/PREFIX (credentials come from the "
            "AWS_* environment, not the URI)"
        )
    if parts.query or parts.fragment:
        raise EcgflowError(f"--upload {upload}: expected s3://BUCKET/PREFIX, without ? or #")
    return parts.netloc, parts.path.strip("/")


def local_folder(location: str) -> Path | None:
    """The folder a ``file://`` or plain-path artifact location names (None if remote)."""
    parts = urlsplit(location)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(url2pathname(parts.path))
    if parts.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def upload_version(model: str, upload: str) -> tuple[DeployTarget, list[Uploaded]]:
    """Copy the local files of version ``model`` below ``upload``; the target serving them.

    The files go to ``s3://BUCKET/PREFIX/NAME/VERSION/`` (a later version does not overwrite
    the one a rollback returns to); each is sent with its SHA-256, which S3 checks on receipt,
    and read back (size, and the SHA-256 where the store keeps it) before the deploy goes on.
    """
    from ecgflow.registry import KIND_TAG, _client, model_version

    bucket, prefix = upload_destination(upload)
    version = model_version(model)
    location = _client().get_model_version_download_uri(version.name, version.version)
    folder = local_folder(location)
    if folder is None:
        raise EcgflowError(
            f"--upload {upload}: version {version.version} of {version.name} is not on this "
            f"machine (its files are at {location}): deploy it without --upload"
        )
    if not folder.is_dir():
        raise EcgflowError(
            f"--upload {upload}: the files of {version.name} version {version.version} are "
            f"missing ({folder} is not a folder)"
        )
    key = "/".join(p for p in (prefix, version.name, str(version.version)) if p)
    uri = f"s3://{bucket}/{key}"
    uploaded = upload_folder(folder, uri)
    kind = (version.tags or {}).get(KIND_TAG) or _kind_of(version.name)
    return DeployTarget(version.name, str(version.version), kind, uri), uploaded


def upload_folder(folder: Path, uri: str) -> list[Uploaded]:
    """Put every file below ``folder`` under ``uri`` (s3://…) and verify each object."""
    from ecgflow.io.storage.s3 import S3Storage

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise EcgflowError(f"--upload: the model version's folder {folder} holds no files")
    storage = S3Storage(uri)
    try:
        done = [_put(storage, path, path.relative_to(folder).as_posix()) for path in files]
    finally:
        storage.close()
    log.info("uploaded %d files (%d bytes) to %s", len(done), sum(u.size for u in done), uri)
    return done


def _put(storage: Any, path: Path, rel: str) -> Uploaded:
    """Send one file with its SHA-256 and check what S3 stored (``S3Storage.upload``)."""
    try:
        size, sha256 = storage.upload(path, rel)
    except EcgflowError as exc:
        where = storage.describe(rel)
        raise EcgflowError(f"--upload: cannot copy {path} to {where}: {exc}") from None
    return Uploaded(rel, size, sha256)


def render_inference_service(
    target: DeployTarget,
    values: dict[str, Any] | None = None,
    namespace: str = "default",
    canary: int | None = None,
    current: dict[str, Any] | None = None,
    chart: Path | None = None,
    release: str = "ecgflow",
) -> dict[str, Any]:
    """The InferenceService for ``target`` from the chart's template (see the module docstring).

    ``values`` are the chart values installed with; ``current`` is the live object (its
    annotations say what is served now: the previous model, and a Standard-mode canary's
    stable side).
    """
    import helm_python as helm

    values = copy.deepcopy(values or {})
    services = values.setdefault("inferenceServices", {})
    for key in list(services):
        if key != target.kind:
            services[key] = {**services[key], "enabled": False}
    service = services.setdefault(target.kind, {})
    service.update(enabled=True, storageUri=target.storage_uri)
    previous = (current or {}).get("metadata", {}).get("annotations", {})
    mode = values.get("serving", {}).get("deploymentMode")
    if canary is not None:
        if not 0 < canary < 100:
            raise EcgflowError(f"--canary {canary}: a traffic share between 1 and 99 (%)")
        service["canary"] = {"enabled": True, "trafficPercent": canary}
        if mode in STANDARD_MODES:
            stable = previous.get(STORAGE)
            if not stable:
                raise EcgflowError(
                    "--canary in Standard mode needs a model already served beside it: "
                    "deploy once without --canary"
                )
            service.update(storageUri=stable)
            service["canary"]["storageUri"] = target.storage_uri
    chart = Path(chart or default_chart())
    if not (chart / "Chart.yaml").is_file():
        raise EcgflowError(f"Helm chart not found at {chart} (pass --chart or set ECGFLOW_CHART)")
    try:
        with helm.Chart.load(chart) as loaded:
            rendered = loaded.render(values, name=release, namespace=namespace)
            text = rendered.get(f"{loaded.name}/{TEMPLATE}", "")
    except helm.HelmError as exc:
        raise EcgflowError(f"chart {chart}: cannot render the InferenceService: {exc}") from None
    docs = [d for d in yaml.safe_load_all(text) if d]
    if len(docs) != 1:
        raise EcgflowError(f"chart {chart}: {TEMPLATE} rendered {len(docs)} objects, not 1")
    isvc = docs[0]
    isvc["metadata"].setdefault("labels", {})["app.kubernetes.io/managed-by"] = FIELD_MANAGER
    notes = isvc["metadata"].setdefault("annotations", {})
    notes[MODEL], notes[STORAGE] = target.model_uri, target.storage_uri
    if previous.get(MODEL) and previous.get(MODEL) != target.model_uri:
        notes[PREVIOUS_MODEL], notes[PREVIOUS_STORAGE] = previous[MODEL], previous[STORAGE]
    elif previous.get(PREVIOUS_MODEL):
        notes[PREVIOUS_MODEL] = previous[PREVIOUS_MODEL]
        notes[PREVIOUS_STORAGE] = previous[PREVIOUS_STORAGE]
    return isvc


def read_inference_service(api_client: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The live InferenceService, or None."""
    from kubernetes import client

    try:
        return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_error(exc, f"read InferenceService {namespace}/{name}") from None


def apply_inference_service(api_client: Any, isvc: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply ``isvc`` as :data:`FIELD_MANAGER`; returns the stored object."""
    from kubernetes import client

    meta = isvc["metadata"]
    where = f"{meta['namespace']}/{meta['name']}"
    # kubernetes 30's generated patch method cannot send an apply patch: call the API directly
    try:
        return api_client.call_api(
            f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}",
            "PATCH",
            path_params={"namespace": meta["namespace"], "name": meta["name"]},
            query_params=[("fieldManager", FIELD_MANAGER), ("force", True)],
            header_params={
                "Content-Type": "application/apply-patch+yaml",
                "Accept": "application/json",
            },
            body=isvc,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except client.ApiException as exc:
        raise _api_error(exc, f"apply InferenceService {where}") from None


def wait_ready(
    api_client: Any,
    namespace: str,
    name: str,
    generation: int | None,
    timeout_s: float,
    poll_s: float = 5.0,
) -> dict[str, Any]:
    """Poll until the InferenceService is ``Ready`` for ``generation``; returns it.

    Raises :class:`EcgflowError` on timeout, with the last not-ready conditions.
    """
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while True:
        last = read_inference_service(api_client, namespace, name)
        status = (last or {}).get("status") or {}
        observed = status.get("observedGeneration")
        current = generation is None or observed is None or observed >= generation
        ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if current and ready.get("status") == "True":
            return last or {}
        if time.monotonic() >= deadline:
            pending = [
                f"{c.get('type')}={c.get('status')}"
                + (f" ({c.get('reason') or c.get('message')})" if c.get("status") != "True" else "")
                for c in status.get("conditions") or []
            ]
            raise EcgflowError(
                f"InferenceService {namespace}/{name} not Ready after {timeout_s:g} s: "
                + (", ".join(pending) or "no status yet (is KServe installed?)")
            )
        time.sleep(poll_s)


def rollback_target(current: dict[str, Any] | None, namespace: str, name: str) -> DeployTarget:
    """The model served before the current one, from the live object's annotations."""
    if current is None:
        raise EcgflowError(f"--rollback: no InferenceService {namespace}/{name} to roll back")
    notes = current.get("metadata", {}).get("annotations", {})
    model, storage = notes.get(PREVIOUS_MODEL), notes.get(PREVIOUS_STORAGE)
    if not model or not storage:
        raise EcgflowError(
            f"--rollback: InferenceService {namespace}/{name} records no previous model "
            f"(annotation {PREVIOUS_MODEL}); deploy a version with --model instead"
        )
    ref = model.removeprefix("models:/")
    model_name, _, version = ref.rpartition("/")
    return DeployTarget(model_name, version, _kind_of(model_name), storage)


@dataclass
class Deployment:
    """What ``deploy`` did."""

    target: DeployTarget
    inference_service: dict[str, Any]
    url: str | None
    applied: bool
    uploaded: tuple[Uploaded, ...] = ()


def deploy(
    model: str | None,
    namespace: str,
    values: dict[str, Any] | None = None,
    canary: int | None = None,
    rollback: bool = False,
    name: str | None = None,
    dry_run: bool = False,
    artifacts_destination: str | None = None,
    storage: str | None = None,
    chart: Path | None = None,
    upload: str | None = None,
    api_client: Any = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
) -> Deployment:
    """Deploy ``model`` (or roll back service ``name``) and wait until it is Ready.

    ``dry_run`` renders the object without touching MLflow's aliases or the cluster when it
    can (a rollback or a Standard-mode canary must read the live object first). A rollback
    also moves the registry's ``champion`` alias back to the version it serves again.
    ``upload`` (``s3://BUCKET/PREFIX``) copies a local version's files there first, dry run
    or not (see :func:`upload_version`).
    """
    from ecgflow.k8s.client import kube_api_client

    if upload is not None:
        upload_destination(upload)  # a bad URI is refused before anything else happens
        if rollback or storage:
            which = "--rollback" if rollback else "--storage-uri"
            raise EcgflowError(f"--upload copies a registered version's files: not with {which}")

    needs_cluster = rollback or (
        canary is not None
        and (values or {}).get("serving", {}).get("deploymentMode") in STANDARD_MODES
    )
    if api_client is None and (needs_cluster or not dry_run):
        api_client = kube_api_client()
    uploaded: list[Uploaded] = []
    if rollback:
        name = name or _service_name(values, _kind_of(model))
        current = read_inference_service(api_client, namespace, name)
        target = rollback_target(current, namespace, name)
    else:
        if model is None:
            raise EcgflowError("--model is required (models:/NAME@ALIAS), unless --rollback")
        if upload is not None:
            target, uploaded = upload_version(model, upload)
        else:
            destination = artifacts_destination or chart_artifacts_destination(values, chart)
            target = resolve_target(model, destination, storage)
        name = _service_name(values, target.kind)
        current = read_inference_service(api_client, namespace, name) if api_client else None
    isvc = render_inference_service(target, values, namespace, canary, current, chart)
    if dry_run:
        return Deployment(target, isvc, None, applied=False, uploaded=tuple(uploaded))
    stored = apply_inference_service(api_client, isvc)
    log.info("applied InferenceService %s/%s → %s", namespace, name, target.model_uri)
    ready = wait_ready(
        api_client, namespace, name, stored.get("metadata", {}).get("generation"), timeout_s, poll_s
    )
    if rollback:
        from ecgflow.registry import CHAMPION, _client, promotion_lock

        client = _client()
        with promotion_lock(client, target.name):  # not while a promote decides
            client.set_registered_model_alias(target.name, CHAMPION, target.version)
        log.info("%s@%s is version %s again", target.name, CHAMPION, target.version)
    url = (ready.get("status") or {}).get("url")
    return Deployment(target, ready, url, applied=True, uploaded=tuple(uploaded))


def _kind_of(model: str | None) -> str:
    """The chart's service key for a model name or ``models:/NAME…`` URI (GEM or classifier)."""
    from ecgflow.registry import GEM_NAME

    name = (model or "").removeprefix("models:/").split("@")[0].split("/")[0]
    return "gem" if name == GEM_NAME else "classifier"


def _service_name(values: dict[str, Any] | None, kind: str) -> str:
    """The InferenceService name the chart gives service ``kind`` (its values, or defaults)."""
    configured = ((values or {}).get("inferenceServices") or {}).get(kind, {}).get("name")
    return configured or {"classifier": "ecg-classifier", "gem": "ecg-gem"}[kind]


def _api_error(exc: Any, action: str) -> EcgflowError:
    if exc.status in (401, 403):
        return EcgflowError(
            f"cannot {action}: the Kubernetes API refused ({exc.status} {exc.reason}); your "
            "credentials need get/patch on inferenceservices.serving.kserve.io"
        )
    return EcgflowError(f"cannot {action}: {exc.status} {exc.reason}")
