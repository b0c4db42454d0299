"""The MLflow model registry: register exported models, promote them by alias behind a gate.

``register`` logs an export folder in an MLflow run (the ONNX network with its side files as a
model that also takes raw ECG, see :mod:`ecgflow.mlflow_model`, plus the PyTorch weights) and
registers it as a new version, tagged with the evaluation's metrics and their bootstrap
intervals, its data hash and the pipeline run.

``promote`` gives the version the alias ``challenger`` and moves ``champion`` to it only if it
beats the current champion on the same evaluation data by more than ``min_delta`` (or there is
no champion). Every decision is recorded on the version as ``promotion.*`` tags, refusals with
their reason. Works against the embedded SQLite store and against an MLflow server alike.

Moving ``champion`` is a read-decide-write on the registry, so concurrent ``promote`` calls on
one model are serialised by a registry-side lock: a registered model ``NAME.promote-lock``,
which the store creates atomically or refuses (a unique name). The holder re-reads the champion,
decides, writes and deletes the lock; a lock left by a crashed process is broken once it has
stood unchanged for ``stale_s`` seconds of the waiter's own clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgflow import tracking
from ecgflow.artifacts import GEM_FILES, METRICS, MODEL_ONNX, PYTORCH, SIDE_FILES
from ecgflow.errors import EcgflowError

DEFAULT_NAME = "ecg-classifier"
GEM_NAME = "ecg-gem"
KIND_TAG = "ecgflow.kind"  # "classifier" or "gem": what `ecgflow serve` starts for a version
CHAMPION = "champion"
CHALLENGER = "challenger"
LOCK_SUFFIX = ".promote-lock"
LOCK_OWNER_TAG = "ecgflow.lock.owner"

log = logging.getLogger(__name__)


@dataclass
class RegisteredVersion:
    """A registered model version."""

    name: str
    version: str
    uri: str
    run_id: str

    def summary(self) -> dict[str, str]:
        """Name, version and ``models:/`` URI (a KFP artifact's metadata)."""
        return {"name": self.name, "version": self.version, "uri": self.uri}


@dataclass
class PromotionDecision:
    """What ``promote`` decided, and why."""

    name: str
    version: str
    promoted: bool
    reason: str
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None


def _client() -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking.connected_uri())
    return mlflow.MlflowClient()


def model_version(uri: str) -> Any:
    """The MLflow ``ModelVersion`` that ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names."""
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/")
    if ref == uri or not ("@" in ref or "/" in ref):
        raise EcgflowError(f"--model {uri}: expected models:/NAME@ALIAS or models:/NAME/N")
    client = _client()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, number = ref.split("/", 1)
        return client.get_model_version(name, number)
    except MlflowException as exc:
        raise EcgflowError(f"--model {uri}: {_message(exc)}") from None


def _read_metrics(eval_dir: Path) -> dict[str, Any]:
    path = Path(eval_dir) / METRICS
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EcgflowError(f"{path}: not found (--eval must be an eval output)") from None
    except (OSError, ValueError) as exc:
        raise EcgflowError(f"{path}: unreadable ({exc})") from None
    if not isinstance(metrics, dict) or not metrics.get("data_hash"):
        raise EcgflowError(f"{path}: data_hash missing (not an eval output)")
    return metrics


def register(
    export_dir: Path,
    eval_dir: Path,
    name: str = DEFAULT_NAME,
    pipeline_run: str | None = None,
    experiment: str = "ecgflow-registry",
) -> RegisteredVersion:
    """Log ``export_dir`` in a new run and register it as a new version of ``name``."""
    import mlflow

    from ecgflow.mlflow_model import log_model

    export_dir = Path(export_dir)
    onnx_path = export_dir / MODEL_ONNX
    for path in (onnx_path, *(export_dir / f for f in SIDE_FILES), export_dir / PYTORCH):
        if not path.exists():
            raise EcgflowError(f"{path}: not found (--model must be an export output)")
    metrics = _read_metrics(eval_dir)
    flat = {k: float(v) for k, v in metrics.items() if _number(v)}
    flat |= _interval_metrics(metrics)
    run_id = tracking.start_run(experiment, f"register-{name}")
    try:
        # raw ECG in, label-named answers out; model.onnx + extra_files/ stay KServe's files
        info = log_model(export_dir, registered_model_name=name)
        mlflow.log_artifacts(str(export_dir / PYTORCH), artifact_path=PYTORCH)
        tracking.log_metrics(flat, step=0)
        mlflow.set_tags({"eval.data_hash": metrics["data_hash"], "stage": "register"})
    finally:
        tracking.end_run()
    version = str(info.registered_model_version)
    client = _client()
    tags = {f"metric.{k}": str(v) for k, v in flat.items()}
    tags |= {"eval.data_hash": metrics["data_hash"], "eval.split": str(metrics.get("split"))}
    tags[KIND_TAG] = "classifier"
    if pipeline_run:
        tags["pipeline_run"] = pipeline_run
    if metrics.get("training_run_id"):
        tags["training_run_id"] = str(metrics["training_run_id"])
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return RegisteredVersion(name, version, f"models:/{name}/{version}", run_id)


def _interval_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Eval's bootstrap intervals as ``<metric>_ci_low`` / ``<metric>_ci_high`` numbers."""
    out = {}
    for key, bounds in (metrics.get("ci95") or {}).items():
        if isinstance(bounds, list) and len(bounds) == 2 and all(map(_number, bounds)):
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = map(float, bounds)
    return out


def register_gem(
    model_dir: Path,
    eval_dir: Path,
    name: str = GEM_NAME,
    pipeline_run: str | None = None,
    experiment: str = "ecgflow-registry",
) -> RegisteredVersion:
    """Log a GEM folder (finetune-gem's ``model/``) in a new run; register a version of ``name``.

    The version is tagged with eval-gem's metrics (``metric.qa_accuracy``, …), its
    ``eval.data_hash`` (the questions asked) and ``ecgflow.kind=gem``.
    """
    import mlflow

    model_dir = Path(model_dir)
    for part in GEM_FILES:
        if not (model_dir / part).exists():
            raise EcgflowError(f"{model_dir / part}: not found (--model must be a GEM folder)")
    metrics = _read_metrics(eval_dir)
    flat = {k: float(v) for k, v in metrics.items() if _number(v)}
    prior = metrics.get("label_prior") or {}
    flat |= {f"prior_{k}": float(v) for k, v in prior.items() if _number(v)}
    run_id = tracking.start_run(experiment, f"register-{name}")
    try:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        tracking.log_metrics(flat, step=0)
        mlflow.set_tags({"eval.data_hash": metrics["data_hash"], "stage": "register"})
    finally:
        tracking.end_run()
    from mlflow.exceptions import MlflowException

    client = _client()
    try:  # a plain folder, not an MLflow flavour: register its artifact location directly
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        info = client.create_model_version(name, source, run_id=run_id)
    except MlflowException as exc:
        raise EcgflowError(f"cannot register {name!r}: {exc.message}") from None
    version = str(info.version)
    tags = {f"metric.{k}": str(v) for k, v in flat.items()}
    tags |= {"eval.data_hash": metrics["data_hash"], KIND_TAG: "gem"}
    if pipeline_run:
        tags["pipeline_run"] = pipeline_run
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return RegisteredVersion(name, version, f"models:/{name}/{version}", run_id)


def register_with_params(
    kind: str, model_dir: Path, eval_dir: Path, settings: Any, pipeline_run: str | None
) -> RegisteredVersion:
    """The register steps' shared body: ``kind`` "classifier" (an export folder) or "gem".

    ``settings``: the step's :class:`~ecgflow.params.PromoteParams` (its ``name`` is used).
    """
    how = {"classifier": register, "gem": register_gem}.get(kind)
    if how is None:
        raise EcgflowError(f"kind: {kind!r} is not 'classifier' or 'gem'")
    return how(Path(model_dir), Path(eval_dir), name=settings.name, pipeline_run=pipeline_run)


def promote(
    name: str = DEFAULT_NAME,
    metric: str = "macro_auroc",
    min_delta: float = 0.0,
    version: str | None = None,
    allow_equal: bool = False,
    lock_timeout_s: float = 120.0,
    stale_s: float = 60.0,
    lower_bound: bool = False,
) -> PromotionDecision:
    """Alias ``version`` (default: newest) challenger; make it champion if it wins the gate.

    ``allow_equal``: a tie with the champion also promotes ("not worse", GEM's gate);
    otherwise the challenger must beat the champion by more than ``min_delta``. The whole
    read-decide-write runs under :func:`promotion_lock`, so concurrent calls act one after
    the other and the better model ends as champion whatever the order.

    ``lower_bound``: the challenger's lower 95 % bound (``metric.<metric>_ci_low``, eval's
    bootstrap over patients) must itself beat the champion's value by more than ``min_delta``.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise EcgflowError(f"model {name!r}: {_message(exc)}") from None
    if not versions:
        raise EcgflowError(f"model {name!r}: no registered versions")
    if version is None:
        version = str(max(int(v.version) for v in versions))
    if not any(str(v.version) == str(version) for v in versions):
        raise EcgflowError(f"model {name!r} has no version {version}")
    version = str(version)
    with promotion_lock(client, name, timeout_s=lock_timeout_s, stale_s=stale_s):
        try:
            # re-read under the lock: tags and the champion as the last holder left them
            candidate = client.get_model_version(name, version)
            client.set_registered_model_alias(name, CHALLENGER, version)
            try:
                champion = client.get_model_version_by_alias(name, CHAMPION)
            except MlflowException:
                champion = None
            value = _metric(candidate.tags, metric)
            decision = _decide(
                name, version, candidate.tags, champion, metric, value, min_delta, allow_equal
            )
            if lower_bound and decision.promoted and decision.champion_value is not None:
                decision = _bound_gate(decision, candidate.tags, min_delta)
            if decision.promoted:
                client.set_registered_model_alias(name, CHAMPION, version)
            record = {
                "promotion.decision": "promoted" if decision.promoted else "refused",
                "promotion.reason": decision.reason,
                "promotion.metric": metric,
                "promotion.compared_to": decision.champion_version or "none",
                "promotion.min_delta": str(min_delta),
            }
            for key, text in record.items():
                client.set_model_version_tag(name, version, key, text)
        except MlflowException as exc:
            raise EcgflowError(f"model {name!r}: {_message(exc)}") from None
    return decision


@contextlib.contextmanager
def promotion_lock(
    client: Any, name: str, timeout_s: float = 120.0, stale_s: float = 60.0
) -> Iterator[str]:
    """Hold the registry-side lock of ``name``'s aliases; yields the lock's owner token.

    The lock is a registered model ``NAME.promote-lock``: creating it is atomic in every
    MLflow store (a unique name), so exactly one caller gets it. Others poll with jitter;
    a lock whose owner has not changed for ``stale_s`` seconds is taken to be left by a
    crashed process and deleted. Gives up after ``timeout_s`` naming the lock.
    """
    from mlflow.exceptions import MlflowException

    lock = f"{name}{LOCK_SUFFIX}"
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
    start = time.monotonic()
    seen_owner, seen_since = None, start
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={LOCK_OWNER_TAG: token},
                description=f"ecgflow: promotion of {name!r} in progress (a lock; see tags)",
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise EcgflowError(
                    f"model {name!r}: cannot take {lock!r}: {_message(exc)}"
                ) from None
        owner = _lock_owner(client, lock)
        now = time.monotonic()
        if owner != seen_owner:
            seen_owner, seen_since = owner, now
        elif owner is not None and now - seen_since >= stale_s:
            log.warning("breaking %s: held by %s for over %.0f s", lock, owner, stale_s)
            if _lock_owner(client, lock) == owner:
                with contextlib.suppress(MlflowException):
                    client.delete_registered_model(lock)
            seen_owner, seen_since = None, time.monotonic()
            continue
        if now - start >= timeout_s:
            raise EcgflowError(
                f"model {name!r}: another promote holds {lock!r} ({owner}); waited "
                f"{timeout_s:.0f} s. If none is running, delete the registered model {lock!r}"
            )
        time.sleep(random.uniform(0.02, 0.1))
    try:
        yield token
    finally:
        if _lock_owner(client, lock) == token:
            with contextlib.suppress(MlflowException):
                client.delete_registered_model(lock)
        else:
            log.warning("%s was broken while this promote held it", lock)


def _lock_owner(client: Any, lock: str) -> str | None:
    """The owner token of ``lock``, or None when there is no lock."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(lock).tags.get(LOCK_OWNER_TAG, "?")
    except MlflowException:
        return None


def _message(exc: Any) -> str:
    """An MLflow error as one line; a refusal by an authenticating server says what to set."""
    text = str(getattr(exc, "message", exc)).strip().splitlines()[0] if str(exc) else repr(exc)
    code = getattr(exc, "error_code", "")
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or "401" in text or "403" in text:
        return (
            f"{text} (the MLflow server wants credentials with permission: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
        )
    return text


def _bound_gate(
    decision: PromotionDecision, tags: dict[str, str], min_delta: float
) -> PromotionDecision:
    """``decision`` kept only if the challenger's lower 95 % bound also beats the champion."""
    low = _metric(tags, f"{decision.metric}_ci_low")
    champion = f"champion {decision.champion_version}'s {decision.champion_value:.4f}"
    if math.isnan(low):
        reason = f"version {decision.version} has no metric.{decision.metric}_ci_low tag"
    elif low <= decision.champion_value + min_delta:
        reason = f"{decision.metric} lower 95 % bound {low:.4f} does not beat {champion}"
    else:
        reason = f"{decision.metric} lower 95 % bound {low:.4f} beats {champion}"
        return dataclasses.replace(decision, reason=reason)
    return dataclasses.replace(decision, promoted=False, reason=f"{reason} (+{min_delta:g})")


def _decide(
    name: str,
    version: str,
    tags: dict[str, str],
    champion: Any,
    metric: str,
    value: float,
    min_delta: float,
    allow_equal: bool = False,
) -> PromotionDecision:
    def decision(promoted: bool, reason: str, champ_version=None, champ_value=None):
        return PromotionDecision(
            name, version, promoted, reason, metric, value, champ_version, champ_value
        )

    if math.isnan(value):
        return decision(False, f"version {version} has no metric.{metric} tag")
    if champion is None:
        return decision(True, "no champion yet")
    champ_version = str(champion.version)
    if champ_version == version:
        return decision(False, "already champion", champ_version, value)
    champ_value = _metric(champion.tags, metric)
    ours, theirs = tags.get("eval.data_hash", ""), champion.tags.get("eval.data_hash", "")
    if ours != theirs:
        return decision(
            False,
            f"different evaluation data: version {version} was evaluated on {ours[:12]}, "
            f"champion {champ_version} on {theirs[:12]}; compare on the same data",
            champ_version,
            champ_value,
        )
    if math.isnan(champ_value):
        return decision(False, f"champion {champ_version} has no metric.{metric} tag")
    if allow_equal:
        if value < champ_value + min_delta:
            return decision(
                False,
                f"{metric} {value:.4f} is worse than champion {champ_version}'s "
                f"{champ_value:.4f} (+{min_delta:g})",
                champ_version,
                champ_value,
            )
        return decision(
            True,
            f"{metric} {value:.4f} is not worse than champion {champ_version}'s "
            f"{champ_value:.4f} (+{min_delta:g})",
            champ_version,
            champ_value,
        )
    if value <= champ_value + min_delta:
        return decision(
            False,
            f"{metric} {value:.4f} does not beat champion {champ_version}'s {champ_value:.4f} "
            f"by more than {min_delta:g}",
            champ_version,
            champ_value,
        )
    return decision(
        True,
        f"{metric} {value:.4f} beats champion {champ_version}'s {champ_value:.4f} "
        f"by more than {min_delta:g}",
        champ_version,
        champ_value,
    )


def describe(decision: PromotionDecision) -> str:
    """One line for the command line."""
    verdict = f"{CHAMPION} → version {decision.version}" if decision.promoted else "refused"
    return (
        f"{decision.name} version {decision.version} ({CHALLENGER}): {verdict}; {decision.reason}"
    )


def _metric(tags: dict[str, str], metric: str) -> float:
    try:
        return float(tags[f"metric.{metric}"])
    except (KeyError, ValueError):
        return float("nan")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
