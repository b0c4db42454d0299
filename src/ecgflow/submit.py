"""Send a compiled pipeline to a Kubeflow Pipelines (KFP v2) server: a run, a schedule, an upload.

Three steps, so everything a user can get wrong is caught before any request:

1. :func:`compile_package` builds a pipeline of :mod:`ecgflow.pipelines.catalog` with a config's
   values as its defaults and compiles it to a temporary IR YAML (no server).
2. :func:`plan_submission` resolves the host and token (``--host``/``$KFP_HOST``,
   ``--token``/``$KFP_TOKEN``), checks ``NAME=VALUE`` parameters against the compiled pipeline's
   inputs and coerces them to their declared types, and normalises a cron schedule (no server).
   :meth:`SubmitPlan.describe` is the ``--dry-run`` view, the token masked.
3. :func:`submit` talks to the server through ``kfp.Client``; its ``ApiException`` and urllib3
   errors come back as :class:`~ecgflow.errors.EcgflowError` naming the host (and namespace).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ecgflow import __version__
from ecgflow.config import PipelineConfig, merge_param
from ecgflow.errors import EcgflowError

if TYPE_CHECKING:
    import kfp

log = logging.getLogger(__name__)

HOST_ENV = "KFP_HOST"
TOKEN_ENV = "KFP_TOKEN"
DEFAULT_EXPERIMENT = "ecgflow"
#: run states after which a run changes no more (KFP v2beta1 ``V2beta1RuntimeState``; ERROR is v1's)
FINAL_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED", "ERROR"})
FAILED_STATES = frozenset({"FAILED", "CANCELED", "ERROR"})
MASK = "***"

_INTEGER_TYPES = {"NUMBER_INTEGER", "INTEGER"}
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLEANS |= {"false": False, "0": False, "no": False, "off": False}


class KfpError(EcgflowError):
    """The KFP server refused a request; ``status`` is its HTTP status (None: not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- the compiled pipeline ---------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineInput:
    """One input parameter of a compiled pipeline (``root.inputDefinitions.parameters``)."""

    name: str
    type: str
    default: Any = None
    optional: bool = True


@dataclass(frozen=True)
class CompiledPipeline:
    """A pipeline compiled to a KFP IR YAML file, with what submit needs to know about it."""

    name: str  # catalog name: training, training-gem
    display_name: str  # pipelineInfo.name, the pipeline's name in KFP
    description: str
    path: Path
    inputs: dict[str, PipelineInput]
    digest: str  # sha256 of the YAML: names uploaded versions

    @property
    def version_name(self) -> str:
        """The name ``--upload-only`` gives a new version: ecgflow's version and the spec's hash."""
        return f"{self.display_name}-{__version__}-{self.digest[:12]}"


def compile_package(name: str, config: PipelineConfig, directory: Path) -> CompiledPipeline:
    """Compile catalog pipeline ``name`` (``config``'s values as defaults) into ``directory``."""
    from kfp import compiler

    from ecgflow.pipelines.catalog import build_pipeline

    pipeline = build_pipeline(name, config)
    path = directory / f"{name}.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, package_path=str(path))
    log.info("compiled pipeline %s → %s", name, path)
    return read_package(path, name)


def read_package(path: Path, name: str | None = None) -> CompiledPipeline:
    """The inputs and name of a compiled KFP IR YAML file (its first document)."""
    text = path.read_text(encoding="utf-8")
    try:
        spec = next(iter(yaml.safe_load_all(text)), None)
    except yaml.YAMLError as exc:
        raise EcgflowError(f"{path}: not a compiled pipeline ({exc})") from None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec:
        raise EcgflowError(f"{path}: not a compiled KFP pipeline (no pipelineInfo)")
    info = spec["pipelineInfo"]
    parameters = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    inputs = {
        key: PipelineInput(
            name=key,
            type=str(value.get("parameterType", "STRING")),
            default=value.get("defaultValue"),
            optional=bool(value.get("isOptional", "defaultValue" in value)),
        )
        for key, value in parameters.items()
    }
    return CompiledPipeline(
        name=name or str(info["name"]),
        display_name=str(info["name"]),
        description=str(info.get("description", "")),
        path=path,
        inputs=inputs,
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


# --- checks made before any request ------------------------------------------------------------


def coerce_value(name: str, raw: str, type_: str) -> Any:
    """``raw`` as parameter ``name``'s declared IR type; :class:`EcgflowError` when it is not."""

    def bad(expected: str) -> EcgflowError:
        return EcgflowError(f"--param {name}: expected {expected} ({type_}), got {raw!r}")

    text = raw.strip()
    if type_ in _INTEGER_TYPES:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise bad("an integer")
        return int(text)
    if type_ == "NUMBER_DOUBLE":
        try:
            number = float(text)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if type_ == "BOOLEAN":
        if text.lower() not in _BOOLEANS:
            raise bad("true or false")
        return _BOOLEANS[text.lower()]
    if type_ in {"LIST", "STRUCT"}:
        kind, expected = (list, "a JSON list") if type_ == "LIST" else (dict, "a JSON object")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise bad(expected) from None
        if not isinstance(value, kind):
            raise bad(expected)
        return value
    return raw  # STRING (and any type this version does not know): as given


def parse_params(pairs: Sequence[str], inputs: dict[str, PipelineInput]) -> dict[str, Any]:
    """``NAME=VALUE`` strings checked against ``inputs`` and coerced to their types."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EcgflowError(f"--param expects NAME=VALUE, got {pair!r}")
        if key not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            raise EcgflowError(f"unknown pipeline parameter {key!r}; known: {known}")
        if key in values:
            raise EcgflowError(f"--param {key} given more than once")
        # a section's JSON is deep-merged onto its compiled default: it changes only what it names
        value = coerce_value(key, raw, inputs[key].type)
        values[key] = merge_param(key, inputs[key].default, value)
    missing = sorted(k for k, p in inputs.items() if not p.optional and k not in values)
    if missing:
        raise EcgflowError(f"the pipeline needs --param for: {', '.join(missing)}")
    return values


# second, minute, hour, day of month, month, day of week (robfig/cron, which KFP uses)
_CRON_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_CRON_NAMES = {
    4: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    5: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
_CRON_ITEM = re.compile(r"(?P<range>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?")


def normalise_cron(expression: str) -> str:
    """A 6-field cron (seconds first, as KFP wants) from a 5- or 6-field one; rejects bad ones."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise EcgflowError(
            f"--recurring {expression!r}: expected 5 cron fields (minute hour day-of-month month "
            f"day-of-week) or 6 with seconds first, got {len(fields)}"
        )
    for index, text in enumerate(fields):
        what, low, high = _CRON_FIELDS[index]
        for item in text.split(","):
            problem = _cron_item_problem(item, index, low, high)
            if problem:
                raise EcgflowError(
                    f"--recurring {expression!r}: bad {what} field {text!r} ({problem})"
                )
    return " ".join(fields)


def _cron_item_problem(item: str, index: int, low: int, high: int) -> str | None:
    match = _CRON_ITEM.fullmatch(item)
    if not match:
        return f"{item!r} is not a value, range, * or */step"
    if match["step"] is not None and int(match["step"]) == 0:
        return "a step of 0"
    spec = match["range"]
    if spec == "?":
        return None if index in (3, 5) else "'?' only in day of month or day of week"
    if spec == "*":
        return None
    bounds = []
    for part in spec.split("-"):
        if part.isdigit():
            value = int(part)
        elif part.upper() in _CRON_NAMES.get(index, []):
            value = _CRON_NAMES[index].index(part.upper()) + (1 if index == 4 else 0)
        else:
            return f"{part!r} is not a number"
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
        bounds.append(value)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"range {spec} runs backwards"
    return None


@dataclass(frozen=True)
class Trigger:
    """When a recurring run starts: a 6-field cron or a fixed interval in seconds."""

    cron: str | None = None
    interval_s: int | None = None

    def body(self) -> dict[str, Any]:
        """The ``trigger`` of KFP's v2beta1 recurring-run request."""
        if self.cron is not None:
            return {"cron_schedule": {"cron": self.cron}}
        return {"periodic_schedule": {"interval_second": self.interval_s}}


@dataclass(frozen=True)
class SubmitOptions:
    """What the user asked for (the ``ecgflow submit`` options); checked by plan_submission."""

    host: str | None = None
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    experiment_must_exist: bool = False
    run_name: str | None = None
    params: Sequence[str] = ()
    recurring: str | None = None
    interval_s: int | None = None
    wait: bool = False
    upload_only: bool = False
    enable_caching: bool | None = None
    service_account: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class SubmitPlan:
    """A checked request: everything :func:`submit` sends, nothing sent yet."""

    host: str | None
    token: str | None = field(repr=False)
    namespace: str | None
    experiment: str
    experiment_must_exist: bool
    pipeline: CompiledPipeline
    run_name: str
    parameters: dict[str, Any]
    trigger: Trigger | None
    wait: bool
    upload_only: bool
    enable_caching: bool | None
    service_account: str | None

    @property
    def action(self) -> str:
        """``upload``, ``recurring-run`` or ``run``."""
        if self.upload_only:
            return "upload"
        return "recurring-run" if self.trigger else "run"

    def describe(self) -> dict[str, Any]:
        """The request as ``--dry-run`` shows it; the token is masked."""
        view: dict[str, Any] = {
            "action": self.action,
            "host": self.host,
            "namespace": self.namespace,
            "token": MASK if self.token else None,
            "pipeline": self.pipeline.name,
            "pipeline_name": self.pipeline.display_name,
        }
        if self.upload_only:
            view["version_name_if_pipeline_exists"] = self.pipeline.version_name
            return view
        view |= {
            "experiment": self.experiment,
            "experiment_must_exist": self.experiment_must_exist,
            "run_name": self.run_name,
            "parameters": self.parameters,
            "enable_caching": self.enable_caching,
            "service_account": self.service_account,
        }
        if self.trigger:
            view["trigger"] = self.trigger.body()
        else:
            view["wait"] = self.wait
        return view


def resolve_host(host: str | None) -> str | None:
    """``host``, else ``$KFP_HOST``; checked to be an http(s) URL, without a trailing slash."""
    host = (host or os.environ.get(HOST_ENV) or "").strip() or None
    if host is None:
        return None
    if not re.match(r"https?://[^/\s]+", host):
        raise EcgflowError(
            f"KFP host {host!r} must be a URL starting with http:// or https:// "
            "(e.g. http://localhost:8888 through kubectl port-forward)"
        )
    return host.rstrip("/")


def plan_submission(pipeline: CompiledPipeline, options: SubmitOptions) -> SubmitPlan:
    """Check ``options`` against ``pipeline`` without any request; :class:`EcgflowError` if bad."""
    host = resolve_host(options.host)
    if host is None:
        if not options.dry_run:
            raise EcgflowError(f"no KFP host: pass --host URL or set ${HOST_ENV}")
        log.warning("no KFP host: a real submit needs --host URL or $%s", HOST_ENV)
    token = options.token or os.environ.get(TOKEN_ENV) or None
    if options.recurring is not None and options.interval_s is not None:
        raise EcgflowError("--recurring and --interval exclude each other: give one")
    trigger = None
    if options.recurring is not None:
        trigger = Trigger(cron=normalise_cron(options.recurring))
    elif options.interval_s is not None:
        if options.interval_s < 1:
            raise EcgflowError(f"--interval must be at least 1 second, got {options.interval_s}")
        trigger = Trigger(interval_s=options.interval_s)
    if trigger and options.wait:
        raise EcgflowError("--wait follows one run; a recurring run has none to wait for")
    if options.upload_only:
        given = [
            flag
            for flag, value in (
                ("--param", options.params),
                ("--recurring/--interval", trigger),
                ("--wait", options.wait),
                ("--run-name", options.run_name),
            )
            if value
        ]
        if given:
            raise EcgflowError(
                f"--upload-only uploads the pipeline with the config's defaults; "
                f"{', '.join(given)} would have no effect"
            )
    if not options.experiment.strip():
        raise EcgflowError("--experiment must not be empty")
    parameters = parse_params(options.params, pipeline.inputs)
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H-%M-%S")
    return SubmitPlan(
        host=host,
        token=token,
        namespace=options.namespace or None,
        experiment=options.experiment.strip(),
        experiment_must_exist=options.experiment_must_exist,
        pipeline=pipeline,
        run_name=options.run_name or f"{pipeline.display_name} {stamp}",
        parameters=parameters,
        trigger=trigger,
        wait=options.wait,
        upload_only=options.upload_only,
        enable_caching=options.enable_caching,
        service_account=options.service_account or None,
    )


# --- talking to the server ---------------------------------------------------------------------


@dataclass
class SubmitResult:
    """What the server made of a plan; ``url`` opens it in the KFP UI."""

    action: str
    url: str
    experiment_id: str | None = None
    run_id: str | None = None
    recurring_run_id: str | None = None
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None
    created: bool = True  # upload: False when this very version was already there
    final_state: str | None = None  # with wait: the run's last state
    error: str | None = None  # with wait: the run's error message, if any

    @property
    def failed(self) -> bool:
        """The run (waited for) ended FAILED, CANCELED or ERROR."""
        return self.final_state in FAILED_STATES


def run_url(host: str, run_id: str) -> str:
    """The KFP UI page of a run."""
    return f"{host}/#/runs/details/{run_id}"


def submit(
    plan: SubmitPlan,
    *,
    timeout_s: float | None = None,
    poll_s: float = 10.0,
    on_state: Callable[[str], None] | None = None,
    on_submitted: Callable[[SubmitResult], None] | None = None,
) -> SubmitResult:
    """Send ``plan``: upload the pipeline, create a recurring run, or create (and wait for) a run.

    ``on_submitted`` gets the result as soon as the run exists (before any waiting). With
    ``plan.wait`` the run is polled every ``poll_s`` seconds and ``on_state`` gets each new
    state; a run still going after ``timeout_s`` seconds raises :class:`EcgflowError`.
    """
    if plan.host is None:
        raise EcgflowError(f"no KFP host: pass --host URL or set ${HOST_ENV}")
    kfp_ = _Kfp(plan.host, plan.token, plan.namespace)
    if plan.upload_only:
        return kfp_.upload(plan.pipeline)
    experiment_id = kfp_.experiment_id(plan.experiment, must_exist=plan.experiment_must_exist)
    if plan.trigger:
        return kfp_.schedule(plan, experiment_id)
    result = kfp_.run(plan, experiment_id)
    if on_submitted:
        on_submitted(result)
    if plan.wait and result.run_id:
        state, error = kfp_.wait(result.run_id, timeout_s, poll_s, on_state)
        result.final_state, result.error = state, error
    return result


class _Kfp:
    """A ``kfp.Client`` whose failures become :class:`EcgflowError`; it prints nothing."""

    def __init__(self, host: str, token: str | None, namespace: str | None) -> None:
        self.host, self.namespace, self._has_token = host, namespace, token is not None
        self._check_health(token)
        import kfp

        with self._errors("connecting"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "only works with KFP v2.0.0-beta.2 and later"
            # kfp's default namespace is "kubeflow"; another one skips its own healthz call
            self.client: kfp.Client = kfp.Client(
                host=host, existing_token=token, namespace=namespace or "kubeflow"
            )

    def _check_health(self, token: str | None) -> None:
        """GET /apis/v2beta1/healthz once (kfp.Client retries it five times, 5 s apart)."""
        import kfp_server_api

        config = kfp_server_api.Configuration(host=self.host)
        config.retries = 0  # a refused connection fails at once, without urllib3's retry warnings
        if token:
            config.api_key["authorization"] = token
            config.api_key_prefix["authorization"] = "Bearer"
        api = kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(config))
        with self._errors("checking its health (GET /apis/v2beta1/healthz)", healthz=True):
            # raw response (not decoded): a login page must not pass for a healthy server
            response = api.healthz_service_get_healthz(_preload_content=False, _request_timeout=30)
        try:
            health = json.loads(response.data)
        except ValueError:
            health = None
        if not isinstance(health, dict):
            raise EcgflowError(
                f"{self.host} is not a KFP API: /apis/v2beta1/healthz did not answer JSON "
                "(a login page? check --host and the token)"
            )
        multi_user = bool(health.get("multi_user", False))
        log.info(
            "KFP at %s: version %s, multi-user %s", self.host, health.get("tag_name"), multi_user
        )
        if multi_user and not self.namespace:
            log.warning("KFP at %s is multi-user: pass --namespace (your profile's)", self.host)

    @contextlib.contextmanager
    def _errors(self, doing: str, *, healthz: bool = False) -> Iterator[None]:
        """Map kfp_server_api / urllib3 / kfp errors to :class:`EcgflowError`; swallow prints."""
        import kfp_server_api
        import urllib3

        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                yield
        except kfp_server_api.ApiException as exc:
            raise KfpError(self._describe(exc, doing, healthz), exc.status or None) from None
        except urllib3.exceptions.HTTPError as exc:
            raise EcgflowError(
                f"cannot reach KFP at {self.host} ({_reason(exc)}) while {doing}: "
                "is the host right and the server (or port-forward) up?"
            ) from None
        except ValueError as exc:  # kfp's own checks, e.g. two experiments with one name
            raise EcgflowError(f"KFP at {self.host}, {doing}: {exc}") from None
        except TimeoutError as exc:  # kfp.Client's healthz retries ran out
            raise EcgflowError(f"KFP at {self.host}, {doing}: {exc}") from None
        finally:
            for line in printed.getvalue().splitlines():
                log.debug("kfp: %s", line)

    def _describe(self, exc: Any, doing: str, healthz: bool) -> str:
        """A readable message for an ``ApiException``: status, reason, the server's words."""
        status, reason = exc.status, (exc.reason or "").splitlines()
        status_line = f"{status} {reason[0] if reason else ''}".strip()
        detail = _server_message(exc.body)
        detail = f": {detail}" if detail else ""
        if not status:  # kfp_server_api's wrapper of TLS failures
            return f"cannot reach KFP at {self.host} while {doing}: {' '.join(reason)}"
        if status == 401:
            if not self._has_token:
                return (
                    f"KFP at {self.host} needs authentication ({status_line}) while {doing}: "
                    f"pass --token or set ${TOKEN_ENV}"
                )
            return (
                f"KFP at {self.host} rejected the token ({status_line}) while {doing}; "
                f"check --token / ${TOKEN_ENV}{detail}"
            )
        if status == 403:
            need = (
                f"the token's identity needs access to namespace {self.namespace!r}"
                if self.namespace
                else "no --namespace was given (multi-user KFP needs the profile's namespace)"
            )
            return f"KFP at {self.host} did not allow {doing} ({status_line}): {need}{detail}"
        if status == 404 and healthz:
            return (
                f"{self.host} is not a KFP v2 API: /apis/v2beta1/healthz answered "
                f"{status_line}; check --host"
            )
        return f"KFP at {self.host} answered {status_line} while {doing}{detail}"

    def experiment_id(self, name: str, *, must_exist: bool) -> str:
        """The id of experiment ``name``; created when missing unless ``must_exist``."""
        ns = self.namespace
        with self._errors(f"looking up experiment {name!r}"):
            try:
                experiment = self.client.get_experiment(experiment_name=name, namespace=ns)
            except ValueError as exc:
                if not str(exc).startswith("No experiment is found"):
                    raise
                experiment = None
        if experiment is None:
            where = f" in namespace {ns!r}" if ns else ""
            if must_exist:
                raise EcgflowError(
                    f"experiment {name!r} not found{where} at {self.host} "
                    "(--experiment-must-exist): create it first or pick another --experiment"
                )
            with self._errors(f"creating experiment {name!r}"):
                experiment = self.client.create_experiment(name=name, namespace=ns)
            log.info("created experiment %s%s (%s)", name, where, experiment.experiment_id)
        return str(experiment.experiment_id)

    def run(self, plan: SubmitPlan, experiment_id: str) -> SubmitResult:
        """Create one run of the plan's pipeline."""
        with self._errors(f"creating run {plan.run_name!r}"):
            run = self.client.run_pipeline(
                experiment_id=experiment_id,
                job_name=plan.run_name,
                pipeline_package_path=str(plan.pipeline.path),
                params=plan.parameters,
                enable_caching=plan.enable_caching,
                service_account=plan.service_account,
            )
        url = run_url(self.host, run.run_id)
        log.info("created run %s (%s): %s", plan.run_name, run.run_id, url)
        return SubmitResult("run", url, experiment_id=experiment_id, run_id=run.run_id)

    def schedule(self, plan: SubmitPlan, experiment_id: str) -> SubmitResult:
        """Create a recurring run; missed schedules are not caught up, one run at a time."""
        assert plan.trigger is not None
        with self._errors(f"creating recurring run {plan.run_name!r}"):
            recurring = self.client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=plan.run_name,
                cron_expression=plan.trigger.cron,
                interval_second=plan.trigger.interval_s,
                max_concurrency=1,
                no_catchup=True,
                params=plan.parameters,
                pipeline_package_path=str(plan.pipeline.path),
                enable_caching=plan.enable_caching,
                service_account=plan.service_account,
            )
        rid = recurring.recurring_run_id
        url = f"{self.host}/#/recurringrun/details/{rid}"
        log.info("created recurring run %s (%s): %s", plan.run_name, rid, url)
        return SubmitResult("recurring-run", url, experiment_id=experiment_id, recurring_run_id=rid)

    def upload(self, pipeline: CompiledPipeline) -> SubmitResult:
        """Upload the pipeline, or a new version of it when one with its name exists."""
        name, ns = pipeline.display_name, self.namespace
        query = {"key": "display_name", "operation": "EQUALS", "stringValue": name}
        with self._errors(f"looking up pipeline {name!r}"):
            found = self.client.list_pipelines(
                filter=json.dumps({"predicates": [query]}), namespace=ns
            ).pipelines
        if not found:
            with self._errors(f"uploading pipeline {name!r}"):
                uploaded = self.client.upload_pipeline(
                    str(pipeline.path),
                    pipeline_name=name,
                    description=pipeline.description,
                    namespace=ns,
                )
            url = f"{self.host}/#/pipelines/details/{uploaded.pipeline_id}"
            log.info("uploaded pipeline %s (%s): %s", name, uploaded.pipeline_id, url)
            return SubmitResult("upload", url, pipeline_id=uploaded.pipeline_id)
        if len(found) > 1:
            raise EcgflowError(f"{len(found)} pipelines are called {name!r} at {self.host}")
        pid, version = found[0].pipeline_id, pipeline.version_name
        try:
            with self._errors(f"uploading version {version!r} of pipeline {name!r}"):
                uploaded = self.client.upload_pipeline_version(
                    str(pipeline.path),
                    pipeline_version_name=version,
                    pipeline_id=pid,
                    description=pipeline.description,
                )
        except KfpError as exc:
            if exc.status != 409:
                raise
            # the same spec from the same ecgflow is already there: uploading is idempotent
            log.info("pipeline %s already has version %s", name, version)
            return SubmitResult(
                "upload", f"{self.host}/#/pipelines/details/{pid}", pipeline_id=pid, created=False
            )
        vid = uploaded.pipeline_version_id
        url = f"{self.host}/#/pipelines/details/{pid}/version/{vid}"
        log.info("uploaded version %s of pipeline %s (%s): %s", version, name, vid, url)
        return SubmitResult("upload", url, pipeline_id=pid, pipeline_version_id=vid)

    def wait(
        self,
        run_id: str,
        timeout_s: float | None,
        poll_s: float,
        on_state: Callable[[str], None] | None,
    ) -> tuple[str, str | None]:
        """Poll the run until it reaches a final state: (state, error message or None)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = None
        while True:
            with self._errors(f"getting run {run_id}"):
                run = self.client.get_run(run_id)
            state = str(run.state or "RUNTIME_STATE_UNSPECIFIED").upper()
            if state != last:
                log.info("run %s: %s", run_id, state)
                if on_state:
                    on_state(state)
                last = state
            if state in FINAL_STATES:
                error = getattr(run.error, "message", None) if run.error else None
                return state, error
            if deadline is not None and time.monotonic() >= deadline:
                raise EcgflowError(
                    f"run {run_id} still {state} after {timeout_s:g} s (--timeout); it goes on: "
                    f"{run_url(self.host, run_id)}"
                )
            pause = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))


def _reason(exc: Exception) -> str:
    """A short reason for a urllib3 error: 'connection refused', 'timed out', ..."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return text.split(": ", 1)[-1] if ": " in text else text


def _server_message(body: Any) -> str:
    """The ``message`` (or ``error``) of a KFP error body; '' when there is none."""
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body).strip()[:300]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "").strip()[:300]
    return ""
