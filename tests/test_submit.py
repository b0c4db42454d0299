"""ecgflow submit against a fake KFP v2beta1 REST API (pytest-httpserver) with the real kfp.Client.

The fake records every request and answers the way KFP's API server does: healthz, experiments
list/create, pipeline and pipeline-version uploads (multipart), runs create/get and recurring
runs create; it can demand a bearer token (401) or refuse everything but healthz (403).
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from ecgflow.cli import app
from ecgflow.config import ENV_OVERRIDES, PipelineConfig
from ecgflow.errors import EcgflowError
from ecgflow.submit import (
    CompiledPipeline,
    SubmitOptions,
    coerce_value,
    compile_package,
    normalise_cron,
    plan_submission,
    submit,
)

TOKEN = "tok-s3cr3t-9f8e7d6c"  # a fake
runner = CliRunner()


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _filtered_name(request: Request) -> str | None:
    """The display_name a KFP list filter asks for."""
    raw = request.args.get("filter")
    return json.loads(raw)["predicates"][0]["stringValue"] if raw else None


@dataclass
class FakeKfp:
    """A KFP v2beta1 API server good enough for kfp.Client; ``requests`` is what it was sent."""

    url: str
    token: str | None = None  # require this bearer token (401 otherwise)
    forbidden: bool = False  # answer 403 to everything but healthz
    healthz: tuple[int, str] | None = None  # (status, body) instead of a healthy answer
    states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    experiments: dict[str, str] = field(default_factory=dict)  # display_name → id
    pipelines: dict[str, str] = field(default_factory=dict)  # display_name → id
    versions: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        files = {k: f.read() for k, f in request.files.items()}
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "args": dict(request.args),
                "auth": request.headers.get("Authorization"),
                "json": request.get_json(silent=True) if not files else None,
                "files": files,
            }
        )
        path, method = request.path, request.method
        if path == "/apis/v2beta1/healthz" and self.healthz:
            status, body = self.healthz
            return Response(body, status=status, content_type="text/html")
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _json(401, {"code": 16, "message": "Unauthenticated: token not valid"})
        if path == "/apis/v2beta1/healthz":
            return _json(200, {"commit_sha": "abc", "tag_name": "2.5.0", "multi_user": False})
        if self.forbidden:
            return _json(403, {"code": 7, "message": "PermissionDenied: no access to namespace"})
        if path == "/apis/v2beta1/experiments" and method == "GET":
            name = _filtered_name(request)
            found = [{"experiment_id": i, "display_name": n} for n, i in self.experiments.items()]
            found = [e for e in found if name is None or e["display_name"] == name]
            return _json(200, {"experiments": found, "total_size": len(found)} if found else {})
        if path == "/apis/v2beta1/experiments" and method == "POST":
            body = request.get_json()
            self.experiments[body["display_name"]] = eid = f"exp-{len(self.experiments) + 1}"
            return _json(200, {**body, "experiment_id": eid})
        if path == "/apis/v2beta1/pipelines" and method == "GET":
            name = _filtered_name(request)
            found = [{"pipeline_id": i, "display_name": n} for n, i in self.pipelines.items()]
            found = [p for p in found if name is None or p["display_name"] == name]
            return _json(200, {"pipelines": found, "total_size": len(found)} if found else {})
        if path == "/apis/v2beta1/pipelines/upload":
            name = request.args["name"]
            self.pipelines[name] = pid = f"pipe-{len(self.pipelines) + 1}"
            return _json(200, {"pipeline_id": pid, "display_name": name})
        if path == "/apis/v2beta1/pipelines/upload_version":
            name = request.args["name"]
            if name in self.versions:
                return _json(409, {"code": 6, "message": f"AlreadyExists: version {name}"})
            self.versions.add(name)
            pid = request.args["pipelineid"]
            return _json(200, {"pipeline_id": pid, "pipeline_version_id": "ver-1", "name": name})
        if path == "/apis/v2beta1/runs" and method == "POST":
            body = request.get_json()
            return _json(200, {**body, "run_id": "run-1", "state": "PENDING"})
        if path == "/apis/v2beta1/runs/run-1":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            run: dict[str, Any] = {"run_id": "run-1", "state": state}
            if state == "FAILED":
                run["error"] = {"code": 2, "message": "train-clip: OOMKilled"}
            return _json(200, run)
        if path == "/apis/v2beta1/recurringruns" and method == "POST":
            return _json(200, {**request.get_json(), "recurring_run_id": "rr-1"})
        return _json(404, {"code": 5, "message": f"no route {method} {path}"})

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        """The requests of one kind."""
        return [r for r in self.requests if r["method"] == method and r["path"] == path]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KFP_HOST", "KFP_TOKEN", "ECGFLOW_CONFIG", *ENV_OVERRIDES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeKfp]:
    server = FakeKfp(url=httpserver.url_for("").rstrip("/"))
    httpserver.expect_request(re.compile(r"^/apis/")).respond_with_handler(server.handle)
    yield server


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    """The training pipeline compiled once for the module (a couple of seconds)."""
    return compile_package("training", PipelineConfig(), tmp_path_factory.mktemp("package"))


def _pipeline_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The IR of a run request's pipeline_spec (nested beside platform_spec when there is one)."""
    spec = body["pipeline_spec"]
    return spec.get("pipeline_spec", spec)


def _first_document(data: bytes) -> dict[str, Any]:
    """The pipeline spec of an uploaded IR YAML (a platform spec may follow it)."""
    return next(yaml.safe_load_all(data))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- checks before any request -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "type_", "value"),
    [
        ("7", "NUMBER_INTEGER", 7),
        ("-3", "INTEGER", -3),
        ("0.25", "NUMBER_DOUBLE", 0.25),
        ("1e-3", "NUMBER_DOUBLE", 0.001),
        ("True", "BOOLEAN", True),
        ("no", "BOOLEAN", False),
        ("ptbxl:/data?rate=500", "STRING", "ptbxl:/data?rate=500"),
        ("[1, 2]", "LIST", [1, 2]),
        ('{"a": 1}', "STRUCT", {"a": 1}),
    ],
)
def test_values_are_coerced_to_the_declared_type(raw: str, type_: str, value: Any) -> None:
    result = coerce_value("p", raw, type_)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    ("raw", "type_", "expected"),
    [
        ("3.5", "NUMBER_INTEGER", "an integer"),
        ("abc", "NUMBER_DOUBLE", "a number"),
        ("nan", "NUMBER_DOUBLE", "a finite number"),
        ("maybe", "BOOLEAN", "true or false"),
        ("{}", "LIST", "a JSON list"),
    ],
)
def test_bad_values_name_the_parameter_and_type(raw: str, type_: str, expected: str) -> None:
    with pytest.raises(EcgflowError, match=rf"--param p: expected {expected} \({type_}\)"):
        coerce_value("p", raw, type_)


def test_the_compiled_pipeline_declares_its_inputs(compiled: CompiledPipeline) -> None:
    assert compiled.display_name == "ecgflow-training"
    assert compiled.inputs["train_nproc"].type == "NUMBER_INTEGER"
    assert compiled.inputs["render_images"].type == "BOOLEAN"
    assert compiled.inputs["ingest_params"].type == "STRING"
    ingest = json.loads(compiled.inputs["ingest_params"].default)
    assert ingest["source"] == PipelineConfig().ingest.source


def test_unknown_parameter_lists_the_known_ones(compiled: CompiledPipeline) -> None:
    options = SubmitOptions(host="http://kfp:8888", params=["train_nproq=1"])
    match = r"unknown pipeline parameter 'train_nproq'; known: .*train_nproc"
    with pytest.raises(EcgflowError, match=match):
        plan_submission(compiled, options)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("0 3 * * 1-5", "0 0 3 * * 1-5"),
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 0 3 ? * MON-FRI", "30 0 3 ? * MON-FRI"),
        ("0 0 1 1,4,7,10 *", "0 0 0 1 1,4,7,10 *"),
    ],
)
def test_cron_gets_seconds_first(given: str, sent: str) -> None:
    assert normalise_cron(given) == sent


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("0 3 * *", "expected 5 cron fields"),
        ("0 0 3 * * * 2026", "got 7"),
        ("61 * * * *", "bad minute field '61'"),
        ("0 24 * * *", "bad hour field"),
        ("*/0 * * * *", "a step of 0"),
        ("0 5-1 * * *", "runs backwards"),
        ("? * * * *", "'?' only in"),
        ("@daily", "expected 5 cron fields"),
        ("0 3 * * FUNDAY", "not a number"),
    ],
)
def test_malformed_cron_is_rejected(given: str, problem: str) -> None:
    with pytest.raises(EcgflowError, match=re.escape(problem)):
        normalise_cron(given)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SubmitOptions(), "no KFP host: pass --host URL or set \\$KFP_HOST"),
        (SubmitOptions(host="kfp.example.com"), "must be a URL starting with http"),
        (
            SubmitOptions(host="http://h", recurring="0 3 * * *", interval_s=60),
            "--recurring and --interval exclude each other",
        ),
        (SubmitOptions(host="http://h", interval_s=60, wait=True), "--wait follows one run"),
        (SubmitOptions(host="http://h", interval_s=0), "at least 1 second"),
        (
            SubmitOptions(host="http://h", upload_only=True, params=["seed=1"]),
            "--param would have no effect",
        ),
        (SubmitOptions(host="http://h", params=["seed"]), "NAME=VALUE"),
        (SubmitOptions(host="http://h", params=["gem_qa=a", "gem_qa=b"]), "more than once"),
    ],
)
def test_bad_options_are_caught_before_sending(
    compiled: CompiledPipeline, options: SubmitOptions, message: str
) -> None:
    with pytest.raises(EcgflowError, match=message):
        plan_submission(compiled, options)


# --- runs --------------------------------------------------------------------------------------


def test_run_sends_coerced_parameters_experiment_id_and_token(
    compiled: CompiledPipeline,
    fake: FakeKfp,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    params = ["train_nproc=2", "render_images=false", "with_gem=true", "gem_qa=qa.json"]
    options = SubmitOptions(
        host=fake.url, token=TOKEN, params=params, run_name="nightly", service_account="runner"
    )
    fake.token = TOKEN
    result = submit(plan_submission(compiled, options))

    created = fake.sent("POST", "/apis/v2beta1/experiments")
    assert [r["json"]["display_name"] for r in created] == ["ecgflow"]  # missing: created
    (run,) = fake.sent("POST", "/apis/v2beta1/runs")
    body = run["json"]
    assert body["experiment_id"] == result.experiment_id == "exp-1"
    assert body["display_name"] == "nightly" and body["service_account"] == "runner"
    parameters = body["runtime_config"]["parameters"]
    assert parameters == {
        "train_nproc": 2, "render_images": False, "with_gem": True, "gem_qa": "qa.json",
    }  # fmt: skip
    assert [type(parameters[k]) for k in ("train_nproc", "render_images")] == [int, bool]
    assert _pipeline_spec(body)["pipelineInfo"]["name"] == "ecgflow-training"
    assert result.run_id == "run-1"
    assert result.url == f"{fake.url}/#/runs/details/run-1"

    assert fake.requests and all(r["auth"] == f"Bearer {TOKEN}" for r in fake.requests)
    out, err = capsys.readouterr()
    assert TOKEN not in caplog.text + out + err
    assert "Experiment details" not in out  # kfp.Client's prints are kept off stdout


def test_an_existing_experiment_is_reused(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.experiments["ecgflow"] = "exp-42"
    submit(plan_submission(compiled, SubmitOptions(host=fake.url)))
    assert not fake.sent("POST", "/apis/v2beta1/experiments")
    (run,) = fake.sent("POST", "/apis/v2beta1/runs")
    assert run["json"]["experiment_id"] == "exp-42"
    assert run["auth"] is None  # no token given: none sent


def test_namespace_reaches_the_experiment(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    submit(plan_submission(compiled, SubmitOptions(host=fake.url, namespace="team-ecg")))
    (listed,) = fake.sent("GET", "/apis/v2beta1/experiments")[:1]
    assert listed["args"]["namespace"] == "team-ecg"
    (created,) = fake.sent("POST", "/apis/v2beta1/experiments")
    assert created["json"] == {"display_name": "ecgflow", "namespace": "team-ecg"}


def test_experiment_must_exist(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    options = SubmitOptions(host=fake.url, experiment="ablation", experiment_must_exist=True)
    with pytest.raises(EcgflowError, match="experiment 'ablation' not found"):
        submit(plan_submission(compiled, options))
    assert not fake.sent("POST", "/apis/v2beta1/experiments")
    assert not fake.sent("POST", "/apis/v2beta1/runs")


def test_caching_override_reaches_every_task(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    submit(plan_submission(compiled, SubmitOptions(host=fake.url, enable_caching=False)))
    (run,) = fake.sent("POST", "/apis/v2beta1/runs")
    tasks = _pipeline_spec(run["json"])["root"]["dag"]["tasks"]
    assert tasks and all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())


@pytest.mark.parametrize(
    ("options", "trigger"),
    [
        ({"recurring": "0 3 * * *"}, {"cron_schedule": {"cron": "0 0 3 * * *"}}),
        ({"interval_s": 3600}, {"periodic_schedule": {"interval_second": 3600}}),
    ],
)
def test_recurring_run_trigger(
    compiled: CompiledPipeline, fake: FakeKfp, options: dict[str, Any], trigger: dict[str, Any]
) -> None:
    options = SubmitOptions(host=fake.url, params=["train_nproc=1"], **options)
    plan = plan_submission(compiled, options)
    result = submit(plan)
    assert result.recurring_run_id == "rr-1"
    assert not fake.sent("POST", "/apis/v2beta1/runs")
    (request,) = fake.sent("POST", "/apis/v2beta1/recurringruns")
    body = request["json"]
    assert body["trigger"] == trigger
    assert body["experiment_id"] == "exp-1" and body["mode"] == "ENABLE"
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True
    assert body["runtime_config"]["parameters"] == {"train_nproc": 1}


def test_wait_reports_each_state_once(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.states = ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]
    seen: list[str] = []
    plan = plan_submission(compiled, SubmitOptions(host=fake.url, wait=True))
    result = submit(plan, poll_s=0.01, on_state=seen.append)
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert result.final_state == "SUCCEEDED" and not result.failed
    assert len(fake.sent("GET", "/apis/v2beta1/runs/run-1")) == 4


def test_wait_gives_up_after_the_timeout(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.states = ["RUNNING"]
    plan = plan_submission(compiled, SubmitOptions(host=fake.url, wait=True))
    with pytest.raises(EcgflowError, match=r"run run-1 still RUNNING after 0.2 s.*runs/details"):
        submit(plan, timeout_s=0.2, poll_s=0.05)


# --- uploads -----------------------------------------------------------------------------------


def test_upload_only_uploads_then_adds_versions(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    plan = plan_submission(compiled, SubmitOptions(host=fake.url, upload_only=True))
    first = submit(plan)
    (upload,) = fake.sent("POST", "/apis/v2beta1/pipelines/upload")
    assert upload["args"]["name"] == "ecgflow-training"
    assert upload["files"]["uploadfile"] == compiled.path.read_bytes()
    assert first.pipeline_id == "pipe-1" and first.url.endswith("/#/pipelines/details/pipe-1")
    assert not fake.sent("POST", "/apis/v2beta1/runs")

    second = submit(plan)  # the pipeline exists now: a new version of it
    (version,) = fake.sent("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version["args"]["name"] == compiled.version_name
    assert version["args"]["pipelineid"] == "pipe-1"
    assert version["files"]["uploadfile"] == compiled.path.read_bytes()
    assert second.pipeline_version_id == "ver-1" and second.created

    third = submit(plan)  # the same version again (409 AlreadyExists): nothing to do
    assert third.pipeline_id == "pipe-1" and not third.created


# --- server errors -----------------------------------------------------------------------------


def test_rejected_token(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.token = "the-right-one"
    plan = plan_submission(compiled, SubmitOptions(host=fake.url, token=TOKEN))
    with pytest.raises(EcgflowError) as caught:
        submit(plan)
    message = str(caught.value)
    assert "rejected the token (401 UNAUTHORIZED)" in message and fake.url in message
    assert TOKEN not in message
    assert len(fake.requests) == 1  # healthz only: no retries, nothing else sent


def test_missing_token(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.token = "the-right-one"
    with pytest.raises(EcgflowError, match=r"needs authentication .*--token or set \$KFP_TOKEN"):
        submit(plan_submission(compiled, SubmitOptions(host=fake.url)))


def test_forbidden_names_the_namespace(compiled: CompiledPipeline, fake: FakeKfp) -> None:
    fake.forbidden = True
    plan = plan_submission(compiled, SubmitOptions(host=fake.url, namespace="team-ecg"))
    with pytest.raises(EcgflowError) as caught:
        submit(plan)
    message = str(caught.value)
    assert "403 FORBIDDEN" in message and "namespace 'team-ecg'" in message
    assert "looking up experiment 'ecgflow'" in message and "PermissionDenied" in message


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((404, "not found"), "is not a KFP v2 API: /apis/v2beta1/healthz answered 404"),
        ((200, "<html>login</html>"), "did not answer JSON"),
    ],
)
def test_a_host_that_is_not_kfp(
    compiled: CompiledPipeline, fake: FakeKfp, answer: tuple[int, str], message: str
) -> None:
    fake.healthz = answer
    with pytest.raises(EcgflowError, match=message):
        submit(plan_submission(compiled, SubmitOptions(host=fake.url)))


def test_unreachable_host(compiled: CompiledPipeline) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(EcgflowError) as caught:
        submit(plan_submission(compiled, SubmitOptions(host=host, token=TOKEN)))
    assert f"cannot reach KFP at {host} (connection refused)" in str(caught.value)


# --- the command line --------------------------------------------------------------------------


def test_cli_dry_run_sends_nothing_and_masks_the_token(
    fake: FakeKfp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    args = ["submit", "--dry-run", "--host", fake.url, "--param", "train_nproc=3"]
    result = runner.invoke(app, [*args, "--param", "with_gem=yes", "--recurring", "0 3 * * *"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["host"] == fake.url and request["token"] == "***"
    assert request["experiment"] == "ecgflow" and request["pipeline_name"] == "ecgflow-training"
    assert request["parameters"] == {"train_nproc": 3, "with_gem": True}
    assert request["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert TOKEN not in result.output
    assert fake.requests == []


def test_cli_dry_run_needs_no_server_or_host() -> None:
    result = runner.invoke(app, ["submit", "--dry-run", "--pipeline", "training-gem"])
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["host"] is None and request["token"] is None
    assert request["pipeline_name"] == "ecgflow-training-gem"


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("epochs=3", "unknown pipeline parameter 'epochs'; known: "),
        ("train_nproc=abc", "--param train_nproc: expected an integer (NUMBER_INTEGER), got 'abc'"),
    ],
)
def test_cli_bad_param_fails_before_any_request(fake: FakeKfp, param: str, message: str) -> None:
    result = runner.invoke(app, ["submit", "--host", fake.url, "--param", param])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert fake.requests == []


def test_cli_wait_on_a_failing_run_exits_non_zero(fake: FakeKfp) -> None:
    fake.states = ["PENDING", "RUNNING", "FAILED"]
    args = ["submit", "--host", fake.url, "--token", TOKEN, "--wait", "--poll-interval", "0.01"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    states = re.findall(r"run state: (\w+)", result.stdout)
    assert states == ["PENDING", "RUNNING", "FAILED"]
    assert f"{fake.url}/#/runs/details/run-1" in result.stdout
    assert "run FAILED: train-clip: OOMKilled" in result.output
    assert TOKEN not in result.output


def test_cli_rejected_token_is_a_clear_error(fake: FakeKfp) -> None:
    fake.token = "the-right-one"
    result = runner.invoke(app, ["submit", "--host", fake.url, "--token", TOKEN])
    assert result.exit_code == 2
    assert "error: KFP at" in result.output and "rejected the token" in result.output
    assert "Traceback" not in result.output and TOKEN not in result.output


def test_cli_upload_only(fake: FakeKfp, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("ingest:\n  source: ptbxl:/data/ptbxl\n")
    args = ["submit", "--host", fake.url, "--upload-only", "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "pipeline uploaded" in result.stdout
    (upload,) = fake.sent("POST", "/apis/v2beta1/pipelines/upload")
    spec = _first_document(upload["files"]["uploadfile"])
    ingest = spec["root"]["inputDefinitions"]["parameters"]["ingest_params"]["defaultValue"]
    # the config's values are the uploaded defaults
    assert json.loads(ingest)["source"] == "ptbxl:/data/ptbxl"
