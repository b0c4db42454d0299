"""ecgflow.k8s: the TrainJob body, and run_trainjob against a fake API server (tests/fake_kube.py).

The real kubernetes client talks HTTP to kmock's emulator; the tests play the Trainer
controller (create hooks add trainer pods and set the TrainJob's conditions).
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from fake_kube import FakeKube, fake_kube, pod
from kube_objects import require_schemas, schema_errors

from ecgflow.errors import EcgflowError
from ecgflow.images import TRAIN_IMAGE
from ecgflow.k8s import client as kclient
from ecgflow.k8s.trainjob import (
    GENERATED_NAME_MAX,
    JOBSET_NAME_LABEL,
    TrainJobFailed,
    TrainJobRequest,
    TrainJobTimeout,
    own_pod_owner_reference,
    run_trainjob,
    trainjob_manifest,
    trainjob_name,
)

TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"
NS = "ml"
COMMAND = ["python", "-m", "torch.distributed.run", "-m", "ecgflow.training.worker", "/w/r.json"]
POLL = 0.05


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with fake_kube([TRAINJOBS]) as fake:
        yield fake


def request(**overrides: Any) -> TrainJobRequest:
    values: dict[str, Any] = {"name": "train-clip-abc123", "namespace": NS, "command": COMMAND}
    return TrainJobRequest(**(values | overrides))


def full_request(**overrides: Any) -> TrainJobRequest:
    """A request with every optional field set, the way the KFP training components fill it."""
    values: dict[str, Any] = {
        "num_nodes": 2,
        "proc_per_node": 4,
        "resources": {
            "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": 4},
            "limits": {"cpu": 16.0, "memory": "64Gi", "nvidia.com/gpu": "4"},
        },
        "env": [
            {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
            {
                "name": "AWS_SECRET_ACCESS_KEY",
                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}},
            },
        ],
        "volumes": [{"name": "ws", "persistentVolumeClaim": {"claimName": "run-ws"}}],
        "volume_mounts": [{"name": "ws", "mountPath": "/kfp-workspace"}],
        "node_selector": {"nvidia.com/gpu.product": "H100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["y"]}]}
                    ]
                }
            }
        },
        "service_account": "ecgflow-trainer",
        "labels": {"app.kubernetes.io/part-of": "ecgflow", "ecgflow/step": "train-clip"},
        "owner": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "launcher",
            "uid": "1234",
            "controller": False,
            "blockOwnerDeletion": False,
        },
    }
    return request(**(values | overrides))


# -- the TrainJob body --------------------------------------------------------------------------


def test_full_manifest_validates_against_the_strict_schema() -> None:
    require_schemas()
    body = trainjob_manifest(full_request())
    assert schema_errors(body) == []
    assert schema_errors(trainjob_manifest(request())) == []


def test_manifest_puts_node_settings_in_trainer_and_pod_settings_in_runtime_patches() -> None:
    body = trainjob_manifest(full_request())
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "1234"
    spec = body["spec"]
    assert spec["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "ecgflow-torch",
    }
    trainer = spec["trainer"]
    assert trainer["command"] == COMMAND
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 4
    assert trainer["resourcesPerNode"]["limits"] == {
        "cpu": 16,
        "memory": "64Gi",
        "nvidia.com/gpu": "4",
    }
    assert [e["name"] for e in trainer["env"]] == ["MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY"]
    (patch,) = spec["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    template = job["template"]["spec"]["template"]
    assert template["metadata"]["labels"]["ecgflow/step"] == "train-clip"
    pod_spec = template["spec"]
    assert pod_spec["serviceAccountName"] == "ecgflow-trainer"
    assert pod_spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "run-ws"
    assert pod_spec["containers"] == [
        {"name": "node", "volumeMounts": [{"name": "ws", "mountPath": "/kfp-workspace"}]}
    ]
    assert pod_spec["nodeSelector"] and pod_spec["tolerations"] and pod_spec["affinity"]


def test_minimal_manifest_leaves_empty_fields_out() -> None:
    body = trainjob_manifest(request())
    assert body["metadata"] == {"name": "train-clip-abc123", "namespace": NS}
    assert set(body["spec"]) == {"runtimeRef", "trainer"}
    assert body["spec"]["trainer"] == {"image": TRAIN_IMAGE, "command": COMMAND, "numNodes": 1}
    # what KFP hands over when the pipeline set nothing
    kfp_empty = request(node_selector=None, tolerations=None, affinity=None, env=None, labels={})
    assert trainjob_manifest(kfp_empty) == body


def test_pet_variables_are_refused() -> None:
    with pytest.raises(EcgflowError, match="PET_NPROC_PER_NODE is refused"):
        request(env=[{"name": "PET_NPROC_PER_NODE", "value": "8"}])


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "Train_CLIP"},
        {"name": "x" * 64},
        {"namespace": ""},
        {"command": []},
        {"num_nodes": 0},
        {"proc_per_node": 0},
        {"env": [{"value": "no name"}]},
        {"resources": {"gpus": 1}},
        {"resources": {"limits": {"nvidia.com/gpu": None}}},
        {"owner": {"kind": "Pod", "name": "p"}},
    ],
)
def test_invalid_requests_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(EcgflowError, match="invalid TrainJob"):
        request(**overrides)


@pytest.mark.parametrize("prefix", ["train-clip", "Finetune_GEM", "123", "", "a" * 80, "--x--"])
def test_trainjob_names_are_dns_1035_and_unique(prefix: str) -> None:
    names = {trainjob_name(prefix) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
        assert len(name) <= GENERATED_NAME_MAX
        request(name=name)  # accepted
    assert trainjob_name("train-clip").startswith("train-clip-")


# -- running a TrainJob against the fake API ----------------------------------------------------


def trainer_pod(kube: FakeKube, job: str, index: int = 0, **kwargs: Any) -> str:
    """Add the pod the JobSet controller would make for node ``index`` of ``job``."""
    name = f"{job}-node-0-{index}-x{index}"
    labels = {JOBSET_NAME_LABEL: job, "jobset.sigs.k8s.io/replicatedjob-name": "node"}
    kube.add(pod(name, NS, labels=labels, **kwargs))
    return name


def play_controller(
    kube: FakeKube,
    outcome: str | None,
    *,
    logs: dict[int, str] | None = None,
    delay: float = 0.15,
    reason: str | None = None,
    message: str = "",
    **pod_kwargs: Any,
) -> None:
    """On TrainJob creation: add its trainer pods with their logs, then set ``outcome``."""

    def created(job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        for index in range(job["spec"]["trainer"]["numNodes"]):
            pod_name = trainer_pod(kube, name, index, **pod_kwargs)
            if logs is not None and index in logs:
                kube.set_log(NS, pod_name, logs[index])
        kube.set_condition(TRAINJOBS, NS, name, "Created")
        if outcome is not None:
            kube.later(
                delay, kube.set_condition, TRAINJOBS, NS, name, outcome, "True", reason, message
            )

    kube.on_create(TRAINJOBS, created)


def test_success_returns_the_final_trainjob_streams_logs_and_deletes(kube: FakeKube) -> None:
    # a pod of another JobSet with a log: not ours, not streamed
    kube.add(pod("other-node-0-0-a", NS, labels={JOBSET_NAME_LABEL: "other"}))
    kube.set_log(NS, "other-node-0-0-a", "not mine\n")
    play_controller(kube, "Complete", logs={0: "epoch 1 loss 0.5\nepoch 2 loss 0.4\nno newline"})
    lines: list[str] = []
    req = full_request(num_nodes=1)
    final = run_trainjob(
        req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=lines.append
    )

    assert final["metadata"]["name"] == req.name
    last = final["status"]["conditions"][-1]
    assert (last["type"], last["status"]) == ("Complete", "True")
    assert lines == ["epoch 1 loss 0.5", "epoch 2 loss 0.4", "no newline"]
    assert kube.get(TRAINJOBS, NS, req.name) is None  # deleted
    assert kube.names(TRAINJOBS) == []
    created = kube.history(TRAINJOBS, NS, req.name)[0]
    assert created is not None and created["spec"] == trainjob_manifest(req)["spec"]
    # the log was followed through the real client: GET .../pods/<pod>/log?container=node&follow
    (log_call,) = [r for r in kube.requests("fetch", "v1/pods") if r.subresource == "log"]
    assert log_call.name == f"{req.name}-node-0-0-x0"
    assert log_call.params["container"] == "node" and log_call.params["follow"].lower() == "true"


def test_created_trainjob_validates_against_the_strict_schema(kube: FakeKube) -> None:
    require_schemas()
    play_controller(kube, "Complete", delay=0)
    req = full_request()
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=print)
    created = kube.history(TRAINJOBS, NS, req.name)[0]
    assert created is not None
    assert schema_errors(created) == []


def test_logs_of_several_nodes_are_prefixed_with_the_pod(kube: FakeKube) -> None:
    play_controller(kube, "Complete", logs={0: "rank0\n", 1: "rank1\n"})
    lines: list[str] = []
    req = request(num_nodes=2)
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=lines.append)
    assert sorted(lines) == [f"[{req.name}-node-0-0-x0] rank0", f"[{req.name}-node-0-1-x1] rank1"]


def test_log_is_retried_while_the_container_is_being_created(kube: FakeKube) -> None:
    # the pod exists but its log answers 400 ("waiting to start") until later
    def created(job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod_name = trainer_pod(kube, name)
        kube.later(0.2, kube.set_log, NS, pod_name, "finally\n")
        kube.later(0.5, kube.set_condition, TRAINJOBS, NS, name, "Complete")

    kube.on_create(TRAINJOBS, created)
    lines: list[str] = []
    req = request()
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=lines.append)
    assert lines == ["finally"]
    log_calls = [r for r in kube.requests("fetch", "v1/pods") if r.subresource == "log"]
    assert len(log_calls) >= 2  # at least one 400 before the log was there


def test_pods_not_started_yet_are_not_followed(kube: FakeKube) -> None:
    play_controller(kube, "Complete", phase="Pending", state={"waiting": {"reason": "Pulling"}})
    run_trainjob(request(), api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=print)
    assert [r for r in kube.requests("fetch", "v1/pods") if r.subresource == "log"] == []


def test_failure_names_the_condition_and_the_container_termination(kube: FakeKube) -> None:
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "out of memory"}}
    play_controller(
        kube,
        "Failed",
        logs={0: "CUDA out of memory\n"},
        reason="JobSetFailed",
        message="jobset failed: job node-0 failed",
        phase="Failed",
        state=oom,
    )
    lines: list[str] = []
    req = request()
    with pytest.raises(TrainJobFailed) as info:
        run_trainjob(
            req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, on_log=lines.append
        )
    text = str(info.value)
    assert (
        f"TrainJob {NS}/{req.name} failed: JobSetFailed: jobset failed: job node-0 failed" in text
    )
    assert f"pod {req.name}-node-0-0-x0 container node: OOMKilled (exit code 137)" in text
    assert info.value.trainjob["metadata"]["name"] == req.name
    assert isinstance(info.value, EcgflowError)
    assert lines == ["CUDA out of memory"]  # the last words came out before the error
    assert kube.get(TRAINJOBS, NS, req.name) is None


def test_failure_without_pods_says_so(kube: FakeKube) -> None:
    def created(job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        kube.set_condition(TRAINJOBS, NS, name, "Failed", reason="RuntimeNotFound")

    kube.on_create(TRAINJOBS, created)
    with pytest.raises(TrainJobFailed, match="RuntimeNotFound; no trainer pod with a failed"):
        run_trainjob(request(), api_client=kube.api_client, timeout_s=10, poll_s=POLL)


def test_timeout_raises_names_the_job_and_still_deletes(kube: FakeKube) -> None:
    play_controller(kube, None, phase="Pending", state={"waiting": {"reason": "ImagePullBackOff"}})
    req = request()
    with pytest.raises(TrainJobTimeout) as info:
        run_trainjob(req, api_client=kube.api_client, timeout_s=0.3, poll_s=POLL)
    text = str(info.value)
    assert f"TrainJob {NS}/{req.name} did not finish within 0.3 s" in text
    assert "Created=True" in text and "Pending (ImagePullBackOff)" in text
    assert kube.get(TRAINJOBS, NS, req.name) is None
    assert kube.history(TRAINJOBS, NS, req.name)[-1] is None  # deleted, not merely absent


def test_delete_false_keeps_the_trainjob(kube: FakeKube) -> None:
    play_controller(kube, "Complete", delay=0)
    req = request()
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL, delete=False)
    assert kube.get(TRAINJOBS, NS, req.name) is not None


@pytest.mark.parametrize(
    ("signum", "error"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)]
)
def test_interrupt_or_sigterm_still_deletes(
    kube: FakeKube, signum: int, error: type[BaseException]
) -> None:
    play_controller(kube, None)
    main = threading.main_thread().ident
    assert main is not None
    # a shell without job control starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give SIGINT the interactive default for this test
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signum))
    timer.start()
    req = request()
    try:
        with pytest.raises(error):
            run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous_int)
    assert kube.get(TRAINJOBS, NS, req.name) is None
    assert kube.history(TRAINJOBS, NS, req.name)[-1] is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_transient_api_errors_are_retried(kube: FakeKube) -> None:
    play_controller(kube, "Complete", delay=0)
    req = request()
    kube.fail("fetch", TRAINJOBS, 503, name=req.name, times=2)
    final = run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    assert final["status"]["conditions"][-1]["type"] == "Complete"


def test_forbidden_create_is_a_clear_permission_error(kube: FakeKube) -> None:
    kube.fail("create", TRAINJOBS, 403)
    req = request()
    with pytest.raises(EcgflowError) as info:
        run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    text = str(info.value)
    assert f"creating TrainJob {NS}/{req.name}: the ServiceAccount lacks permission" in text
    assert "HTTP 403" in text and "trainjobs is forbidden" in text
    assert "trainjobs.trainer.kubeflow.org: create, get, list, watch, delete" in text
    assert "pods/log: get" in text
    assert kube.history(TRAINJOBS, NS, req.name) == []  # nothing was created
    assert kube.requests("delete", TRAINJOBS) == []


def test_forbidden_pod_listing_fails_and_still_deletes(kube: FakeKube) -> None:
    play_controller(kube, None)
    kube.fail("list", "v1/pods", 403)
    req = request()
    with pytest.raises(EcgflowError, match=r"listing pods .*lacks permission.*pods: get, list"):
        run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    assert kube.get(TRAINJOBS, NS, req.name) is None


def test_missing_trainer_crd_is_explained(kube: FakeKube) -> None:
    kube.fail("create", TRAINJOBS, 404, "the server could not find the requested resource")
    with pytest.raises(EcgflowError, match=r"is Kubeflow Trainer ≥ v2.2 installed"):
        run_trainjob(request(), api_client=kube.api_client, timeout_s=10, poll_s=POLL)


def test_rejected_body_message_does_not_echo_env_values(kube: FakeKube) -> None:
    secret = "s3cr3t-token-value"
    kube.fail("create", TRAINJOBS, 422, f'spec.trainer.env[0].value: Invalid value: "{secret}"')
    req = request(env=[{"name": "TOKEN", "value": secret}])
    with pytest.raises(EcgflowError, match=r"HTTP 422") as info:
        run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    assert secret not in str(info.value) and "<redacted>" in str(info.value)


def test_env_values_are_never_logged(kube: FakeKube, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="ecgflow")
    play_controller(kube, "Complete", delay=0)
    req = request(env=[{"name": "HF_TOKEN", "value": "hf_do_not_log_me"}])
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    assert "HF_TOKEN" in caplog.text
    assert "hf_do_not_log_me" not in caplog.text


def test_log_lines_go_to_the_logger_without_on_log(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ecgflow.k8s.trainjob")
    play_controller(kube, "Complete", logs={0: "to the logger\n"})
    run_trainjob(request(), api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    assert "to the logger" in caplog.messages


# -- the owner reference ------------------------------------------------------------------------


def test_owner_reference_is_the_launcher_pod(kube: FakeKube) -> None:
    launcher = kube.add(pod("train-clip-launcher", NS, container="main"))
    core = kubernetes.client.CoreV1Api(kube.api_client)
    owner = own_pod_owner_reference(core, NS, "train-clip-launcher")
    assert owner == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "train-clip-launcher",
        "uid": launcher["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }
    play_controller(kube, "Complete", delay=0)
    req = request(owner=owner)
    run_trainjob(req, api_client=kube.api_client, timeout_s=10, poll_s=POLL)
    created = kube.history(TRAINJOBS, NS, req.name)[0]
    assert created is not None and created["metadata"]["ownerReferences"] == [owner]


def test_no_owner_outside_a_pod_or_for_an_unknown_pod(kube: FakeKube) -> None:
    core = kubernetes.client.CoreV1Api(kube.api_client)
    assert own_pod_owner_reference(core, NS, None) is None
    assert own_pod_owner_reference(core, NS, "") is None
    assert own_pod_owner_reference(core, NS, "no-such-pod") is None


def test_owner_lookup_forbidden_is_a_permission_error(kube: FakeKube) -> None:
    kube.fail("fetch", "v1/pods", 403)
    core = kubernetes.client.CoreV1Api(kube.api_client)
    with pytest.raises(EcgflowError, match="reading pod ml/me: the ServiceAccount lacks"):
        own_pod_owner_reference(core, NS, "me")


# -- ecgflow.k8s.client -------------------------------------------------------------------------


def test_namespace_and_pod_name_in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "namespace").write_text("team-a\n")
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("HOSTNAME", "train-clip-launcher")
    assert kclient.current_namespace(sa_dir=tmp_path) == "team-a"
    assert kclient.current_pod_name() == "train-clip-launcher"
    monkeypatch.setenv("POD_NAMESPACE", "team-b")
    monkeypatch.setenv("POD_NAME", "from-downward-api")
    assert kclient.current_namespace(sa_dir=tmp_path) == "team-b"
    assert kclient.current_pod_name() == "from-downward-api"


def test_namespace_and_pod_name_outside_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube: FakeKube
) -> None:
    for var in ("POD_NAMESPACE", "POD_NAME", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOSTNAME", "my-laptop")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{kube.url}'}}}}]\n"
        "users: [{name: me, user: {token: t}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: me, namespace: dev}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert kclient.current_pod_name() is None
    assert kclient.current_namespace(sa_dir=tmp_path / "none") == "dev"
    kube.add(pod("p", "dev"))
    api = kclient.kube_api_client()
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod("dev").items
    assert [p.metadata.name for p in pods] == ["p"]
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert kclient.current_namespace(sa_dir=tmp_path / "none") == "default"
    with pytest.raises(EcgflowError, match="no Kubernetes credentials"):
        kclient.kube_api_client()


# -- the fake API itself (tests/fake_kube.py, shared with other Kubernetes-facing tests) ---------


def test_fake_kube_serves_selectors_replace_and_errors(kube: FakeKube) -> None:
    core = kubernetes.client.CoreV1Api(kube.api_client)
    custom = kubernetes.client.CustomObjectsApi(kube.api_client)
    kube.add(pod("a", NS, labels={"app": "x", "tier": "1"}))
    kube.add(pod("b", NS, labels={"app": "y"}))
    kube.add(pod("c", "elsewhere", labels={"app": "x"}))

    def names(selector: str) -> list[str]:
        pods = core.list_namespaced_pod(NS, label_selector=selector).items
        return sorted(p.metadata.name for p in pods)

    assert names("app=x") == ["a"]
    assert names("app in (x,y),!tier") == ["b"]
    assert names("app!=x") == ["b"]
    assert names("tier") == ["a"]

    body = trainjob_manifest(request())
    api = ("trainer.kubeflow.org", "v1alpha1", NS, "trainjobs")
    created = custom.create_namespaced_custom_object(*api, body)
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == NS
    name = body["metadata"]["name"]
    replaced = custom.replace_namespaced_custom_object(
        *api, name, body | {"spec": body["spec"] | {"suspend": True}}
    )
    assert replaced["spec"]["suspend"] is True
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]

    kube.later(0.1, kube.set_condition, TRAINJOBS, NS, name, "Running")
    watch = kubernetes.watch.Watch()
    events = []
    for event in watch.stream(custom.list_namespaced_custom_object, *api, _request_timeout=5):
        status = event["object"].get("status") or {}
        events.append((event["type"], [c["type"] for c in status.get("conditions", [])]))
        if event["type"] == "MODIFIED":
            watch.stop()
    assert events == [("ADDED", []), ("MODIFIED", ["Running"])]
    kube.fail("delete", TRAINJOBS, 500, times=1)
    with pytest.raises(kubernetes.client.ApiException) as info:
        custom.delete_namespaced_custom_object(*api, name)
    assert info.value.status == 500
    custom.delete_namespaced_custom_object(*api, name)
    assert kube.names(TRAINJOBS) == []
