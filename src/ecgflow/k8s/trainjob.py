"""Kubeflow Trainer v2 TrainJobs: build one, run it to the end, stream its logs, clean up.

The TrainJob (``trainer.kubeflow.org/v1alpha1``, Trainer ≥ v2.2) names a
ClusterTrainingRuntime (``ecgflow-torch`` by default, from the Helm chart) whose JobSet has a
replicated job and a container both named ``node``. Per-node settings go in
``spec.trainer``; per-pod ones (ServiceAccount, volumes and their mounts, node selector,
tolerations, affinity, pod labels) in one ``spec.runtimePatches`` entry (manager
:data:`PATCH_MANAGER`) aimed at that job and container.

The trainer injects ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``,
``PET_MASTER_ADDR`` and ``PET_MASTER_PORT`` into the ``node`` container, so the command is a
plain ``python -m torch.distributed.run -m MODULE ...`` with neither ``--standalone`` nor
``--nproc_per_node``, and ``PET_*`` names are refused in ``env``.

The trainer pods are found with the label selector ``jobset.sigs.k8s.io/jobset-name=<name>``
(the JobSet controller labels every pod of the JobSet the trainer names after the TrainJob).

The ServiceAccount running :func:`run_trainjob` needs :data:`REQUIRED_PERMISSIONS`.
Environment values may be secrets: only their names are ever logged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import secrets
import signal
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client

from ecgflow.errors import EcgflowError
from ecgflow.images import TRAIN_IMAGE

log = logging.getLogger(__name__)

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "trainjobs"
#: The runtime's replicated job and its trainer container (the Helm chart's ecgflow-torch).
NODE = "node"
#: ``spec.runtimePatches[].manager`` of the patch this module writes.
PATCH_MANAGER = "ecgflow.launcher"
#: Label the JobSet controller puts on every pod of a JobSet (named after the TrainJob).
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
#: RBAC the launcher's ServiceAccount needs in its namespace.
REQUIRED_PERMISSIONS = (
    "trainjobs.trainer.kubeflow.org: create, get, list, watch, delete; "
    "pods: get, list, watch; pods/log: get"
)
#: Generated names stay this short so the JobSet's job and pod host names
#: (``<name>-node-<job>-<pod>``) stay within the 63-character DNS label limit.
GENERATED_NAME_MAX = 40

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RESOURCE_SECTIONS = ("requests", "limits", "claims")
_TRANSIENT_STATUSES = {0, 408, 429, 500, 502, 503, 504}
_LOG_JOIN_S = 10.0
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


class TrainJobFailed(EcgflowError):  # noqa: N818 (the name says what happened)
    """The TrainJob's ``Failed`` condition became True; ``trainjob`` is its last state."""

    def __init__(self, message: str, trainjob: dict[str, Any]) -> None:
        super().__init__(message)
        self.trainjob = trainjob


class TrainJobTimeout(EcgflowError):  # noqa: N818
    """The TrainJob neither completed nor failed within the timeout."""


@dataclass(frozen=True)
class TrainJobRequest:
    """What to run as a TrainJob; invalid values raise EcgflowError when it is built.

    ``command`` is the ``node`` container's command, e.g. ``["python", "-m",
    "torch.distributed.run", "-m", "ecgflow.training.worker", REQUEST_JSON]``.
    ``proc_per_node`` sets ``numProcPerNode`` (the runtime's default when None).
    ``resources`` (``{"requests": {...}, "limits": {...}}``, as KFP's
    ``TaskConfig.resources``) becomes ``resourcesPerNode``, which replaces the runtime's
    whole resources block: state CPU and memory as well as ``nvidia.com/gpu``.
    ``env`` entries are EnvVar dicts (``value`` or ``valueFrom``); ``PET_*`` names are refused.
    ``volumes``/``volume_mounts`` (e.g. KFP's workspace PVC), ``node_selector``,
    ``tolerations``, ``affinity`` and ``service_account`` apply to every trainer pod;
    ``labels`` go on the TrainJob and its pods; ``owner`` is an ownerReference (see
    :func:`own_pod_owner_reference`; it must live in ``namespace``).
    """

    name: str
    namespace: str
    command: list[str]
    image: str = TRAIN_IMAGE
    num_nodes: int = 1
    proc_per_node: int | None = None
    resources: dict[str, Any] | None = None
    env: list[dict[str, Any]] | None = field(default_factory=list)
    volumes: list[dict[str, Any]] | None = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] | None = field(default_factory=list)
    node_selector: dict[str, str] | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    service_account: str | None = None
    runtime: str = "ecgflow-torch"
    labels: dict[str, str] | None = field(default_factory=dict)
    owner: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        problems = _request_problems(self)
        if problems:
            raise EcgflowError(f"invalid TrainJob {self.name!r}: " + "; ".join(problems))

    @property
    def env_names(self) -> list[str]:
        """The environment variables' names (what may be logged; values may be secrets)."""
        return [str(e.get("name")) for e in self.env or []]


def _request_problems(req: TrainJobRequest) -> list[str]:
    problems = []
    if not isinstance(req.name, str) or len(req.name) > 63 or not _DNS_1035.match(req.name):
        problems.append(
            "name must be a DNS-1035 label (lowercase letters, digits and '-', starting with "
            "a letter, at most 63 characters; trainjob_name() makes one)"
        )
    if not req.namespace:
        problems.append("namespace is empty")
    if not req.command or not all(isinstance(c, str) for c in req.command):
        problems.append("command must be a non-empty list of strings")
    if not req.image:
        problems.append("image is empty")
    if not req.runtime:
        problems.append("runtime is empty")
    if isinstance(req.num_nodes, bool) or not isinstance(req.num_nodes, int) or req.num_nodes < 1:
        problems.append(f"num_nodes must be an integer ≥ 1, got {req.num_nodes!r}")
    ppn = req.proc_per_node
    if ppn is not None and (isinstance(ppn, bool) or not isinstance(ppn, int) or ppn < 1):
        problems.append(f"proc_per_node must be an integer ≥ 1, got {ppn!r}")
    for i, var in enumerate(req.env or []):
        name = var.get("name") if isinstance(var, dict) else None
        if not name or not isinstance(name, str):
            problems.append(f"env[{i}] has no name")
        elif name.startswith("PET_"):
            problems.append(
                f"env {name} is refused: the trainer sets the PET_* variables torchrun reads "
                "(use num_nodes / proc_per_node instead)"
            )
    if req.resources is not None:
        if not isinstance(req.resources, dict):
            problems.append("resources must be a dict with requests/limits")
        else:
            extra = sorted(set(req.resources) - set(_RESOURCE_SECTIONS))
            if extra:
                problems.append(
                    f"resources has unknown keys {extra} (expected {list(_RESOURCE_SECTIONS)})"
                )
            for section in ("requests", "limits"):
                values = req.resources.get(section) or {}
                if not isinstance(values, dict):
                    problems.append(f"resources.{section} must be a dict of quantities")
                    continue
                problems += [
                    f"resources.{section}.{key}: not a quantity: {value!r}"
                    for key, value in values.items()
                    if isinstance(value, bool) or not isinstance(value, int | float | str)
                ]
    if req.owner is not None and not all(
        req.owner.get(k) for k in ("apiVersion", "kind", "name", "uid")
    ):
        problems.append("owner must be an ownerReference with apiVersion, kind, name and uid")
    return problems


def trainer_pod_selector(name: str) -> str:
    """The label selector of the pods of TrainJob ``name`` (its JobSet's pods)."""
    return f"{JOBSET_NAME_LABEL}={name}"


def trainjob_name(prefix: str) -> str:
    """A fresh DNS-1035 TrainJob name: ``prefix`` cleaned up plus a random 8-character suffix.

    At most :data:`GENERATED_NAME_MAX` characters, lowercase, starting with a letter.
    """
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(8))
    stem = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")
    if not stem or not stem[0].isalpha():
        stem = f"tj-{stem}".rstrip("-")
    stem = stem[: GENERATED_NAME_MAX - len(suffix) - 1].rstrip("-")
    return f"{stem}-{suffix}"


def trainjob_manifest(req: TrainJobRequest) -> dict[str, Any]:
    """The TrainJob body for ``req`` (plain dicts; empty fields are left out)."""
    trainer: dict[str, Any] = {
        "image": req.image,
        "command": list(req.command),
        "numNodes": req.num_nodes,
    }
    if req.proc_per_node is not None:
        trainer["numProcPerNode"] = req.proc_per_node
    if req.resources:
        trainer["resourcesPerNode"] = _resources(req.resources)
    if req.env:
        trainer["env"] = copy.deepcopy(req.env)

    pod_spec = _without_empty(
        {
            "serviceAccountName": req.service_account,
            "nodeSelector": copy.deepcopy(req.node_selector),
            "tolerations": copy.deepcopy(req.tolerations),
            "affinity": copy.deepcopy(req.affinity),
            "volumes": copy.deepcopy(req.volumes),
        }
    )
    if req.volume_mounts:
        pod_spec["containers"] = [{"name": NODE, "volumeMounts": copy.deepcopy(req.volume_mounts)}]
    pod_template: dict[str, Any] = {}
    if req.labels:
        pod_template["metadata"] = {"labels": dict(req.labels)}
    if pod_spec:
        pod_template["spec"] = pod_spec

    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": req.runtime},
        "trainer": trainer,
    }
    if pod_template:
        job_patch = {"name": NODE, "template": {"spec": {"template": pod_template}}}
        spec["runtimePatches"] = [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job_patch]}}},
            }
        ]
    metadata: dict[str, Any] = {"name": req.name, "namespace": req.namespace}
    if req.labels:
        metadata["labels"] = dict(req.labels)
    if req.owner:
        metadata["ownerReferences"] = [dict(req.owner)]
    return {"apiVersion": API_VERSION, "kind": "TrainJob", "metadata": metadata, "spec": spec}


def _without_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    """``resourcesPerNode``: quantities as ints or strings (floats become strings)."""
    out: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values = resources.get(section)
        if values:
            out[section] = {k: _quantity(section, k, v) for k, v in values.items()}
    if resources.get("claims"):
        out["claims"] = copy.deepcopy(resources["claims"])
    limits, requests = out.get("limits", {}), out.get("requests", {})
    if out and not all(k in limits or k in requests for k in ("cpu", "memory")):
        log.warning(
            "resourcesPerNode without cpu and memory: it replaces the runtime's whole "
            "resources block, so the trainer pods get no CPU/memory requests or limits"
        )
    return out


def _quantity(section: str, key: str, value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise EcgflowError(f"resources.{section}.{key}: not a quantity: {value!r}")
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    return value


def own_pod_owner_reference(
    core_api: client.CoreV1Api, namespace: str, pod_name: str | None
) -> dict[str, Any] | None:
    """An ownerReference to the pod ``pod_name`` (this launcher's own), or None.

    A TrainJob owned by the launcher pod is garbage-collected with it (after the KFP run's
    pods go), even when the launcher dies before deleting it. Not a controller reference, and
    ``blockOwnerDeletion`` is False (setting it True needs update on ``pods/finalizers``).
    None, with a log line, when there is no pod name (not in a pod) or the pod is not found.
    """
    if not pod_name:
        log.info("not running in a pod: the TrainJob gets no owner (delete it if we die)")
        return None
    try:
        pod = core_api.read_namespaced_pod(pod_name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            log.info("pod %s/%s not found: the TrainJob gets no owner", namespace, pod_name)
            return None
        raise _api_error(exc, f"reading pod {namespace}/{pod_name}") from None
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod.metadata.name,
        "uid": pod.metadata.uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def run_trainjob(
    req: TrainJobRequest,
    *,
    api_client: client.ApiClient | None = None,
    timeout_s: float,
    poll_s: float = 5.0,
    on_log: Callable[[str], None] | None = None,
    delete: bool = True,
) -> dict[str, Any]:
    """Create the TrainJob, stream its pods' logs, wait for it to end; its final object.

    Waits (polling every ``poll_s``) until the condition ``Complete`` or ``Failed`` is True.
    Log lines of every trainer pod (container ``node``) go to ``on_log`` (the module logger
    at INFO when None), prefixed with ``[pod]`` when the job has more than one node.
    Raises :class:`TrainJobFailed` (with the condition's reason and message and the failing
    container's termination reason and exit code), :class:`TrainJobTimeout` after
    ``timeout_s`` seconds, and EcgflowError when the API refuses (401/403: missing RBAC,
    see :data:`REQUIRED_PERMISSIONS`) or the TrainJob cannot be created. With ``delete`` the
    TrainJob is deleted at the end whatever happened (success, failure, timeout, Ctrl-C,
    SIGTERM when called from the main thread). ``api_client`` defaults to
    :func:`ecgflow.k8s.client.kube_api_client`.
    """
    if api_client is None:
        from ecgflow.k8s.client import kube_api_client

        api_client = kube_api_client()
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    body = trainjob_manifest(req)
    where = f"{req.namespace}/{req.name}"
    logs = _PodLogs(core, req.namespace, req.name, on_log, prefix=req.num_nodes > 1)
    created = False
    with _sigterm_as_exit():
        try:
            log.info(
                "creating TrainJob %s: runtime %s, image %s, %d node(s) × %s process(es), env %s",
                where,
                req.runtime,
                req.image,
                req.num_nodes,
                req.proc_per_node or "runtime-default",
                ", ".join(req.env_names) or "-",
            )
            _create(custom, body, req)
            created = True
            return _wait(custom, req, logs, timeout_s, poll_s)
        finally:
            logs.stop()
            if created and delete:
                _delete(custom, req)


def _create(custom: client.CustomObjectsApi, body: dict[str, Any], req: TrainJobRequest) -> None:
    where = f"{req.namespace}/{req.name}"
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, req.namespace, PLURAL, body)
    except client.ApiException as exc:
        if exc.status == 404:
            raise EcgflowError(
                f"cannot create TrainJob {where}: the API has no {PLURAL}.{GROUP}/{VERSION} "
                f"in namespace {req.namespace} (is Kubeflow Trainer ≥ v2.2 installed and the "
                f"namespace there?): {_redact(_server_message(exc), req)}"
            ) from None
        if exc.status == 409:
            raise EcgflowError(
                f"cannot create TrainJob {where}: it already exists (trainjob_name() makes "
                "unique names)"
            ) from None
        if exc.status in (401, 403):
            raise _api_error(exc, f"creating TrainJob {where}") from None
        raise EcgflowError(
            f"cannot create TrainJob {where} (HTTP {exc.status}): "
            f"{_redact(_server_message(exc), req)}"
        ) from None


def _wait(
    custom: client.CustomObjectsApi,
    req: TrainJobRequest,
    logs: _PodLogs,
    timeout_s: float,
    poll_s: float,
) -> dict[str, Any]:
    where = f"{req.namespace}/{req.name}"
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] | None = None
    seen: set[tuple[str, str]] = set()
    while True:
        latest = _get(custom, req)
        if latest is not None:
            job = latest
            for cond in _conditions(job):
                key = (str(cond.get("type")), str(cond.get("reason")))
                if cond.get("status") == "True" and key not in seen:
                    seen.add(key)
                    log.info("TrainJob %s: %s (%s)", where, *key)
            if _condition_true(job, "Complete"):
                logs.finish()
                log.info("TrainJob %s complete", where)
                return job
            if _condition_true(job, "Failed"):
                logs.finish()
                pods = logs.pods(forbidden_raises=False)
                raise TrainJobFailed(_failure_message(job, req, pods), job)
        logs.poll()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pods = logs.pods(forbidden_raises=False)
            raise TrainJobTimeout(_timeout_message(job, req, timeout_s, pods))
        time.sleep(min(poll_s, remaining))


def _get(custom: client.CustomObjectsApi, req: TrainJobRequest) -> dict[str, Any] | None:
    """The TrainJob now, or None after a transient API error (logged)."""
    where = f"{req.namespace}/{req.name}"
    try:
        return custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, req.namespace, PLURAL, req.name
        )
    except client.ApiException as exc:
        if exc.status in (401, 403):
            raise _api_error(exc, f"reading TrainJob {where}") from None
        if exc.status == 404:
            raise EcgflowError(f"TrainJob {where} disappeared (deleted by someone else?)") from None
        if exc.status in _TRANSIENT_STATUSES:
            log.warning("reading TrainJob %s: HTTP %s, retrying", where, exc.status)
            return None
        raise EcgflowError(
            f"reading TrainJob {where} (HTTP {exc.status}): {_server_message(exc)}"
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        log.warning("reading TrainJob %s: %s, retrying", where, exc)
        return None


def _delete(custom: client.CustomObjectsApi, req: TrainJobRequest) -> None:
    """Delete the TrainJob (its JobSet and pods go with it); never raises."""
    where = f"{req.namespace}/{req.name}"
    try:
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, req.namespace, PLURAL, req.name, propagation_policy="Background"
        )
        log.info("deleted TrainJob %s", where)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        log.error(
            "could not delete TrainJob %s (HTTP %s: %s): delete it by hand (kubectl delete "
            "trainjob -n %s %s)",
            where,
            exc.status,
            _server_message(exc),
            req.namespace,
            req.name,
        )
    except Exception as exc:
        log.error("could not delete TrainJob %s (%s): delete it by hand", where, exc)


def _conditions(job: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list(((job or {}).get("status") or {}).get("conditions") or [])


def _condition_true(job: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in _conditions(job))


def _failure_message(
    job: dict[str, Any], req: TrainJobRequest, pods: list[client.V1Pod] | None
) -> str:
    cond = next(c for c in _conditions(job) if c.get("type") == "Failed")
    reason = cond.get("reason") or "no reason"
    detail = f": {cond['message']}" if cond.get("message") else ""
    terminations = _terminations(pods or [])
    if terminations:
        where = "; ".join(terminations)
    elif pods is None:
        where = "its pods could not be listed"
    else:
        where = "no trainer pod with a failed container was found"
    return f"TrainJob {req.namespace}/{req.name} failed: {reason}{detail}; {where}"


def _terminations(pods: list[client.V1Pod]) -> list[str]:
    """``pod P container C: REASON (exit code N)`` for each container that exited non-zero."""
    found = []
    for pod in pods:
        for status in _statuses(pod, init=True):
            for state in (status.state, status.last_state):
                term = state.terminated if state is not None else None
                if term is None or (term.exit_code == 0 and term.reason in (None, "Completed")):
                    continue
                text = (
                    f"pod {pod.metadata.name} container {status.name}: "
                    f"{term.reason or 'terminated'} (exit code {term.exit_code})"
                )
                if term.message:
                    text += f": {term.message.strip()[-300:]}"
                found.append(text)
                break
    return found[:4]


def _timeout_message(
    job: dict[str, Any] | None,
    req: TrainJobRequest,
    timeout_s: float,
    pods: list[client.V1Pod] | None,
) -> str:
    conditions = ", ".join(f"{c.get('type')}={c.get('status')}" for c in _conditions(job))
    states = []
    for pod in pods or []:
        waiting = [
            s.state.waiting.reason
            for s in _statuses(pod)
            if s.state is not None and s.state.waiting is not None and s.state.waiting.reason
        ]
        unschedulable = [
            c.message or c.reason
            for c in (pod.status.conditions if pod.status else None) or []
            if c.type == "PodScheduled" and c.status == "False"
        ]
        phase = pod.status.phase if pod.status else None
        states.append(
            f"{pod.metadata.name} {phase or '?'}"
            + "".join(f" ({x})" for x in waiting + [u for u in unschedulable if u])
        )
    return (
        f"TrainJob {req.namespace}/{req.name} did not finish within {timeout_s:g} s "
        f"(conditions: {conditions or 'none'}; pods: {', '.join(states) or 'none'})"
    )


def _server_message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or "")


def _redact(text: str, req: TrainJobRequest) -> str:
    """``text`` with the request's env values blanked (a server message may echo them)."""
    for var in req.env or []:
        value = var.get("value")
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "<redacted>")
    return text


def _api_error(exc: client.ApiException, action: str) -> EcgflowError:
    """A clear error for an API refusal (401/403 name the missing RBAC)."""
    if exc.status == 403:
        why = "the ServiceAccount lacks permission"
    elif exc.status == 401:
        why = "the API server did not accept the ServiceAccount's credentials"
    else:
        why = "the API refused"
    return EcgflowError(
        f"{action}: {why} (HTTP {exc.status}: {_server_message(exc)}); the launcher's "
        f"ServiceAccount needs {REQUIRED_PERMISSIONS}"
    )


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """In the main thread, SIGTERM (a cancelled KFP run) raises SystemExit, so cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _PodLogs:
    """Follows the log of each trainer pod's ``node`` container, one thread per container run.

    :meth:`poll` lists the pods (``jobset.sigs.k8s.io/jobset-name=<job>``) and starts a follower
    for each running or finished container not followed yet (a restarted container is followed
    again); a follower that gets 400 (container still being created) is retried on the next
    poll. Lines go to ``on_log`` one at a time (serialized).
    """

    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str,
        job_name: str,
        on_log: Callable[[str], None] | None,
        prefix: bool,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.selector = trainer_pod_selector(job_name)
        self.on_log = on_log
        self.prefix = prefix
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._started: set[tuple[str, str, int]] = set()
        self._threads: list[threading.Thread] = []
        self._responses: list[Any] = []
        self._stopped = threading.Event()
        self._warned: set[str] = set()

    def pods(self, forbidden_raises: bool = True) -> list[client.V1Pod] | None:
        """The trainer pods now; None after an API error (logged once).

        A 401/403 raises EcgflowError naming the missing RBAC unless ``forbidden_raises`` is
        False (then it is logged like any other error).
        """
        try:
            return list(
                self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            )
        except client.ApiException as exc:
            error = _api_error(exc, f"listing pods {self.selector}")
            if exc.status in (401, 403) and forbidden_raises:
                raise error from None
            self._warn_once("list", str(error))
        except urllib3.exceptions.HTTPError as exc:
            self._warn_once("list", f"listing pods {self.selector}: {exc}")
        return None

    def poll(self) -> None:
        """Start following every container that has output and is not followed yet."""
        for pod in self.pods() or []:
            container = _trainer_container(pod)
            if container is None:
                continue
            status = next((s for s in _statuses(pod) if s.name == container), None)
            state = status.state if status is not None else None
            if state is None or (state.running is None and state.terminated is None):
                continue  # not started yet
            key = (pod.metadata.uid or pod.metadata.name, container, status.restart_count or 0)
            with self._lock:
                if key in self._started or self._stopped.is_set():
                    continue
                self._started.add(key)
            thread = threading.Thread(
                target=self._follow,
                args=(key, pod.metadata.name, container),
                name=f"logs-{pod.metadata.name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def finish(self) -> None:
        """After the job ended: pick up pods not followed yet, let the followers drain."""
        self.poll()
        deadline = time.monotonic() + _LOG_JOIN_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop every follower (closing its stream)."""
        self._stopped.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            with contextlib.suppress(Exception):
                response.close()

    def _follow(self, key: tuple[str, str, int], pod: str, container: str) -> None:
        response = None
        try:
            response = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                follow=True,
                _preload_content=False,
                _request_timeout=(10, None),
            )
            with self._lock:
                self._responses.append(response)
            pending = b""
            for chunk in response.stream(8192, decode_content=True):
                if self._stopped.is_set():
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(pod, line)
            if pending:
                self._emit(pod, pending)
        except client.ApiException as exc:
            if exc.status == 400:  # container creating: try again on the next poll
                with self._lock:
                    self._started.discard(key)
            elif exc.status in (401, 403):
                self._warn_once("log", str(_api_error(exc, f"reading the log of pod {pod}")))
            elif exc.status != 404:
                self._warn_once(pod, f"log of pod {pod}: HTTP {exc.status}")
        except Exception as exc:
            if not self._stopped.is_set():
                self._warn_once(pod, f"log of pod {pod} interrupted: {exc}")
        finally:
            if response is not None:
                with contextlib.suppress(Exception):
                    response.release_conn()

    def _emit(self, pod: str, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self.prefix:
            line = f"[{pod}] {line}"
        with self._emit_lock:
            if self.on_log is None:
                log.info("%s", line)
            else:
                self.on_log(line)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)


def _trainer_container(pod: client.V1Pod) -> str | None:
    names = [c.name for c in (pod.spec.containers if pod.spec else None) or []]
    if NODE in names:
        return NODE
    return names[0] if names else None


def _statuses(pod: client.V1Pod, init: bool = False) -> list[client.V1ContainerStatus]:
    """The pod's container statuses (init containers' first when ``init``)."""
    if pod.status is None:
        return []
    init_statuses = (pod.status.init_container_statuses or []) if init else []
    return list(init_statuses) + list(pod.status.container_statuses or [])
