"""A fake Kubernetes API server for tests: kmock's KubernetesEmulator on 127.0.0.1 in a thread.

The emulator is a stateful CRUD store over HTTP (no controllers, no validation, no RBAC), so
the real synchronous ``kubernetes`` client talks to it unchanged. This module adds what the
tests need on top of it:

- objects created through the API get ``uid``, ``creationTimestamp`` and ``resourceVersion``;
- ``labelSelector`` is honoured on list calls (equality and set-based selectors);
- ``GET .../pods/<pod>/log`` answers what :meth:`FakeKube.set_log` stored (400 "waiting to
  start" for a pod without a log yet, like a container being created; 404 for no such pod);
- PUT (replace, also of ``/status``) works (kmock has no PUT), and so does ``watch=True`` as
  the python client spells it (kmock knows only ``watch=true``); watches ignore
  ``timeoutSeconds`` (stop them with ``Watch.stop()`` or a client timeout);
- :meth:`FakeKube.fail` makes matching requests answer with a Kubernetes ``Status`` error
  (e.g. 403), before anything is stored;
- the test plays the controller: :meth:`FakeKube.on_create` hooks run after each create,
  :meth:`FakeKube.later` runs something after a delay, :meth:`FakeKube.patch` and
  :meth:`FakeKube.set_condition` change stored objects (watchers see MODIFIED events).

Resources are strings ``group/version/plural`` (``trainer.kubeflow.org/v1alpha1/trainjobs``)
or ``v1/plural`` for the core group (``v1/pods``)::

    with fake_kube(["trainer.kubeflow.org/v1alpha1/trainjobs"]) as kube:
        api = kubernetes.client.CustomObjectsApi(kube.api_client)
        kube.on_create(TRAINJOBS, lambda job: kube.later(0.1, kube.set_condition, TRAINJOBS,
                       job["metadata"]["namespace"], job["metadata"]["name"], "Complete"))
        ...  # code under test, given kube.api_client
        assert kube.get(TRAINJOBS, "ns", "name") is None  # deleted
        assert kube.history(TRAINJOBS, "ns", "name")[0]["spec"] == ...

Hooks and :meth:`later` callbacks run on the server's event loop: they must not block (no
API calls through the synchronous client from there); the helpers below may be used from
anywhere. Server-side apply (``PATCH`` as ``application/apply-patch+yaml``) is emulated in a
simplified form (see ``_Emulator._serve_apply``).

Not emulated: watch with label selectors, field selectors, per-field apply ownership,
strategic merge patch (patches merge dicts and replace lists), admission and validation.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import kubernetes

T = TypeVar("T")

ObjectHook = Callable[[dict[str, Any]], None]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        },
        status=code,
    )


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@attrs.define
class _Failure:
    action: kmock.action
    resource: kmock.resource
    status: int
    message: str
    name: str | None
    times: int | None


@attrs.define(kw_only=True)
class _Emulator(kmock.KubernetesEmulator):
    """The kmock emulator plus selectors, pod logs, injected failures and create hooks."""

    failures: list[_Failure] = attrs.field(factory=list)
    create_hooks: list[tuple[kmock.resource, ObjectHook]] = attrs.field(factory=list)
    logs: dict[tuple[str, str], bytes | int] = attrs.field(factory=dict)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        watch = str(request.params.get("watch", "")).lower() in ("true", "1")
        if watch and request.method == kmock.method.GET and request.action != kmock.action.WATCH:
            # the python client sends watch=True, kmock only recognizes watch=true; kmock
            # matches reactions against its recorded requests by identity: record the new one
            original, request = request, attrs.evolve(request, action=kmock.action.WATCH)
            self._requests[:] = [request if r is original else r for r in self._requests]
        if res is not None and request.method == kmock.method.PUT and request.name:
            return await self._serve_replace(request)
        content_type = request.headers.get("Content-Type", "")
        if (
            res is not None
            and request.method == kmock.method.PATCH
            and "apply-patch" in content_type
        ):
            failure = self._failure_for(request)
            return failure if failure is not None else await self._serve_apply(request)
        if res is not None and request.action is not None:
            failure = self._failure_for(request)
            if failure is not None:
                return failure
            if request.subresource == "log" and res == kmock.resource("v1/pods"):
                return self._serve_log(request)
            if request.action == kmock.action.LIST and "labelSelector" in request.params:
                return self._serve_selected(request)
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta.setdefault("resourceVersion", "1")
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and res is not None and response.status < 300:
            self._run_create_hooks(request)
        return response

    def _failure_for(self, request: kmock.Request) -> aiohttp.web.Response | None:
        for failure in self.failures:
            if (
                failure.action == request.action
                and failure.resource == request.resource
                and failure.name in (None, request.name)
                and failure.times != 0
            ):
                if failure.times is not None:
                    failure.times -= 1
                reason = _REASONS.get(failure.status, "Failure")
                return _status(failure.status, reason, failure.message)
        return None

    def _serve_log(self, request: kmock.Request) -> aiohttp.web.Response:
        key = (request.namespace or "", request.name or "")
        stored = _stored(self, request.resource, *key)
        if stored is None or stored.deleted:
            return _status(404, "NotFound", f'pods "{key[1]}" not found')
        log = self.logs.get(key)
        if log is None or isinstance(log, int):
            code = log or 400
            container = request.params.get("container", "node")
            return _status(
                code,
                _REASONS.get(code, "Failure"),
                f'container "{container}" in pod "{key[1]}" is waiting to start: ContainerCreating',
            )
        return aiohttp.web.Response(body=log, content_type="text/plain")

    async def _serve_replace(self, request: kmock.Request) -> aiohttp.web.Response:
        """PUT (replace, or replace status): kmock itself has no PUT."""
        async with self._lock:
            stored = _stored(self, request.resource, request.namespace, request.name or "")
            if stored is None or stored.deleted:
                return _status(404, "NotFound", f'"{request.name}" not found')
            old = copy.deepcopy(stored.raw)
            body = request.data if isinstance(request.data, dict) else {}
            if request.subresource == "status":
                new = old | {"status": body.get("status")}
            else:
                new = copy.deepcopy(body)
                meta = new.setdefault("metadata", {})
                for key in ("uid", "creationTimestamp", "namespace"):
                    if key in (old.get("metadata") or {}):
                        meta[key] = old["metadata"][key]
            version = int((old.get("metadata") or {}).get("resourceVersion") or 1) + 1
            new.setdefault("metadata", {})["resourceVersion"] = str(version)
            stored.history.append(new)
            raw = copy.deepcopy(stored.raw)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _serve_apply(self, request: kmock.Request) -> aiohttp.web.Response:
        """Server-side apply, simplified: create when absent, else replace what the applier sent.

        The applied object's top-level fields replace the stored ones (status stays); a
        ``spec`` change bumps ``metadata.generation``. The field manager is recorded in
        ``metadata.managedFields`` as ``{"manager": NAME}`` — no per-field ownership.
        """
        import json

        body = request.data if isinstance(request.data, dict) else json.loads(request.text)
        manager = request.params.get("fieldManager")
        if not manager:
            return _status(422, "Invalid", "fieldManager is required for apply patch")
        async with self._lock:
            stored = _stored(self, request.resource, request.namespace, request.name or "")
            exists = stored is not None and not stored.deleted
            old = copy.deepcopy(stored.raw) if exists else {}
            old_meta = old.get("metadata") or {}
            new = copy.deepcopy(old) | copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            meta.update(
                uid=old_meta.get("uid", str(uuid.uuid4())),
                creationTimestamp=old_meta.get("creationTimestamp", _now()),
                namespace=request.namespace,
                resourceVersion=str(int(old_meta.get("resourceVersion") or 0) + 1),
                managedFields=[{"manager": manager, "operation": "Apply"}],
            )
            generation = int(old_meta.get("generation") or 0)
            meta["generation"] = (
                generation + 1 if new.get("spec") != old.get("spec") else generation
            )
            if "status" in old:
                new["status"] = old["status"]
            key = (kmock.resource(request.resource), request.namespace, request.name)
            if stored is None:
                self.objects[key] = new
            elif not exists:
                stored.create(new)
            else:
                stored.history.append(new)
            raw = copy.deepcopy(_stored(self, *key).raw)
            event = "MODIFIED" if exists else "ADDED"
            await self._buses[request.resource].put({"type": event, "object": raw})
        return aiohttp.web.json_response(raw, status=200 if exists else 201)

    def _serve_selected(self, request: kmock.Request) -> aiohttp.web.Response:
        if all(res != request.resource for res in self._get_resources()):
            return _status(404, "NotFound", "the server could not find the requested resource")
        selector = parse_label_selector(request.params["labelSelector"])
        items = [
            obj.raw
            for (res, ns, _), obj in self.objects.items()
            if res == request.resource
            and (request.namespace is None or ns == request.namespace)
            and not obj.deleted
            and selector((obj.raw.get("metadata") or {}).get("labels") or {})
        ]
        return aiohttp.web.json_response({"metadata": {"resourceVersion": "1"}, "items": items})

    def _run_create_hooks(self, request: kmock.Request) -> None:
        meta = request.data.get("metadata") or {}
        key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
        stored = _stored(self, *key)
        if stored is None or stored.deleted:
            return
        for resource, hook in self.create_hooks:
            if resource == request.resource:
                hook(copy.deepcopy(stored.raw))


def _stored(
    emulator: kmock.KubernetesEmulator,
    resource: str | kmock.resource,
    namespace: str | None,
    name: str,
) -> Any:
    """The emulator's stored object (kmock ``Object``, maybe soft-deleted), or None."""
    wanted = (kmock.resource(resource), namespace, name)
    return next((obj for key, obj in emulator.objects.items() if key == wanted), None)


_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[^,\s]*))?\s*$"
)


def parse_label_selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """A predicate over labels for a Kubernetes label selector (``a=b,c!=d,e in (f,g),!h``)."""
    parts = [p for p in re.split(r",(?![^()]*\))", selector) if p.strip()]
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in parts:
        m = _REQUIREMENT.match(part)
        if m is None:
            raise ValueError(f"unsupported label selector part: {part!r}")
        key, op, value = m["key"], (m["op"] or "").strip(), m["value"]
        if m["neg"]:
            checks.append(lambda labels, k=key: k not in labels)
        elif not op:
            checks.append(lambda labels, k=key: k in labels)
        elif op in ("=", "=="):
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        else:
            values = {v.strip() for v in value.strip("()").split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
    return lambda labels: all(check(labels) for check in checks)


def plural_of(kind: str) -> str:
    """The usual resource plural of ``kind`` (lowercase + s, with the English exceptions)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def resource_of(obj: dict[str, Any]) -> str:
    """``group/version/plural`` (``v1/plural`` for the core group) of a manifest."""
    return f"{obj['apiVersion']}/{plural_of(obj['kind'])}"


def condition(
    kind: str, status: str = "True", reason: str | None = None, message: str = ""
) -> dict[str, Any]:
    """A status condition as controllers write them (reason defaults to ``kind``)."""
    return {
        "type": kind,
        "status": status,
        "reason": reason or kind,
        "message": message,
        "lastTransitionTime": _now(),
    }


def pod(
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    container: str = "node",
    phase: str = "Running",
    state: dict[str, Any] | None = None,
    restart_count: int = 0,
) -> dict[str, Any]:
    """A Pod as the kubelet reports it, one container whose ``state`` defaults to running.

    ``state`` is a ContainerState dict, e.g. ``{"terminated": {"exitCode": 137,
    "reason": "OOMKilled"}}`` or ``{"waiting": {"reason": "ContainerCreating"}}``.
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "labels": dict(labels or {}),
        },
        "spec": {"containers": [{"name": container, "image": "example/image"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": container,
                    "image": "example/image",
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": restart_count,
                    "state": state or {"running": {"startedAt": _now()}},
                }
            ],
        },
    }


class FakeKube:
    """A running fake API server; ``api_client`` is a kubernetes ApiClient pointed at it."""

    def __init__(self, emulator: _Emulator, loop: asyncio.AbstractEventLoop, url: str) -> None:
        self.emulator = emulator
        self.loop = loop
        self.url = url
        configuration = kubernetes.client.Configuration(host=url)
        configuration.retries = 0  # a fake server answers at once: do not hide failures
        self.api_client = kubernetes.client.ApiClient(configuration)
        self._thread: threading.Thread | None = None

    # -- running code on the server's loop ------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the server's event loop (where the stored objects live)."""
        if self._on_loop():
            return fn(*args)

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def later(self, delay_s: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop after ``delay_s`` seconds (a controller)."""
        self.loop.call_soon_threadsafe(self.loop.call_later, delay_s, fn, *args)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    # -- stored objects -------------------------------------------------------------------------

    def add(self, obj: dict[str, Any], resource: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as if created (e.g. a Pod a controller made); returns the stored copy."""
        resource = resource or resource_of(obj)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("resourceVersion", "1")

        def store() -> dict[str, Any]:
            key = (resource, meta.get("namespace"), meta["name"])
            self.emulator.resources[resource] = {}
            existing = _stored(self.emulator, *key)
            if existing is not None and not existing.deleted:
                raise ValueError(f"{key} already exists")
            if existing is not None:
                existing.create(obj)
            else:
                self.emulator.objects[key] = obj
            self._publish(resource, "ADDED", obj)
            return copy.deepcopy(obj)

        return self.call(store)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object now (a copy), or None when it does not exist (or was deleted)."""

        def read() -> dict[str, Any] | None:
            stored = _stored(self.emulator, resource, namespace, name)
            if stored is None or stored.deleted:
                return None
            return copy.deepcopy(stored.raw)

        return self.call(read)

    def history(
        self, resource: str, namespace: str | None, name: str
    ) -> list[dict[str, Any] | None]:
        """Every stored version of the object, oldest first; None marks a deletion."""

        def read() -> list[dict[str, Any] | None]:
            stored = _stored(self.emulator, resource, namespace, name)
            history = stored.history if stored is not None else []
            return [None if v is None else copy.deepcopy(v.raw) for v in history]

        return self.call(read)

    def names(self, resource: str, namespace: str | None = None) -> list[str]:
        """Names of the existing objects of ``resource`` (in ``namespace`` unless None)."""

        def read() -> list[str]:
            wanted = kmock.resource(resource)
            return [
                name
                for (res, ns, name), obj in self.emulator.objects.items()
                if res == wanted and namespace in (None, ns) and not obj.deleted
            ]

        return self.call(read)

    def patch(
        self, resource: str, namespace: str | None, name: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge ``changes`` into the stored object (dicts merge, lists and scalars replace)."""

        def apply() -> dict[str, Any]:
            obj = _stored(self.emulator, resource, namespace, name)
            if obj is None or obj.deleted:
                raise KeyError(f"no {resource} {namespace}/{name}")
            obj.patch(copy.deepcopy(changes))
            raw = obj.raw
            meta = raw.setdefault("metadata", {})
            meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 1) + 1)
            self._publish(resource, "MODIFIED", raw)
            return copy.deepcopy(raw)

        return self.call(apply)

    def set_condition(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        kind: str,
        status: str = "True",
        reason: str | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        """Set (replace or add) the status condition ``kind``, as a controller would."""

        def apply() -> dict[str, Any]:
            current = self.get(resource, namespace, name) or {}
            conditions = [
                c
                for c in (current.get("status") or {}).get("conditions") or []
                if c.get("type") != kind
            ]
            conditions.append(condition(kind, status, reason, message))
            return self.patch(resource, namespace, name, {"status": {"conditions": conditions}})

        return self.call(apply)

    def _publish(self, resource: str, event: str, raw: dict[str, Any]) -> None:
        buses = getattr(self.emulator, "_buses", None)  # kmock's watch streams (private)
        if buses is not None:
            bus = buses[kmock.resource(resource)]
            self.loop.create_task(bus.put({"type": event, "object": copy.deepcopy(raw)}))

    # -- behaviour ------------------------------------------------------------------------------

    def on_create(self, resource: str, hook: ObjectHook) -> None:
        """Call ``hook(stored_object)`` on the server's loop after each create of ``resource``."""
        self.call(self.emulator.create_hooks.append, (kmock.resource(resource), hook))

    def fail(
        self,
        action: str,
        resource: str,
        status: int,
        message: str | None = None,
        *,
        name: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer ``action`` (list/watch/fetch/create/update/delete) on ``resource`` with an error.

        Only requests naming ``name`` when given; only ``times`` times when given. Nothing is
        stored or changed by a failed request.
        """
        message = message or (
            f'{resource.rsplit("/", 1)[-1]} is forbidden: User "system:serviceaccount:test:'
            f'default" cannot {action} resource'
            if status == 403
            else f"injected HTTP {status}"
        )
        failure = _Failure(
            kmock.action(action.upper()), kmock.resource(resource), status, message, name, times
        )
        self.call(self.emulator.failures.append, failure)

    def set_log(self, namespace: str, pod_name: str, log: str | bytes | int) -> None:
        """What ``GET pods/<pod_name>/log`` answers: this text, or an HTTP error code."""
        body = log.encode() if isinstance(log, str) else log
        self.call(self.emulator.logs.__setitem__, (namespace, pod_name), body)

    def requests(self, action: str | None = None, resource: str | None = None) -> list[Any]:
        """The requests served so far (kmock Request objects), optionally filtered."""

        def read() -> list[Any]:
            wanted_action = kmock.action(action.upper()) if action else None
            wanted = kmock.resource(resource) if resource else None
            return [
                r
                for r in list(self.emulator)
                if (wanted_action is None or r.action == wanted_action)
                and (wanted is None or r.resource == wanted)
            ]

        return self.call(read)


@contextlib.contextmanager
def fake_kube(resources: Iterable[str] = ()) -> Iterator[FakeKube]:
    """Run a :class:`FakeKube` for the block; ``resources`` (and ``v1/pods``) are served."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        try:
            async with _Emulator() as emulator, kmock.Server(emulator) as server:
                for resource in ("v1/pods", *resources):
                    emulator.resources[resource] = {}
                box["kube"] = FakeKube(emulator, loop, str(server.url).rstrip("/"))
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="fake-kube", daemon=True
    )
    thread.start()
    if not started.wait(10) or "error" in box:
        raise RuntimeError(f"fake Kubernetes API did not start: {box.get('error')!r}")
    kube: FakeKube = box["kube"]
    try:
        yield kube
    finally:
        kube.api_client.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
