"""Kubernetes API client setup: in-cluster config or kubeconfig, this pod's namespace and name.

The namespace comes from ``POD_NAMESPACE`` (downward API), else the ServiceAccount's
namespace file, else the kubeconfig context, else ``default``; the pod's name from ``POD_NAME``
or, in a pod, ``HOSTNAME`` (Kubernetes sets it to the pod name).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kubernetes import client, config

from ecgflow.errors import EcgflowError

log = logging.getLogger(__name__)

#: Where Kubernetes mounts a pod's ServiceAccount token, CA and namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster() -> bool:
    """True inside a Kubernetes pod (the API server's service variables are set)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def kube_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A new ApiClient: the pod's ServiceAccount in a cluster, else the kubeconfig.

    ``kubeconfig`` (a path) or ``context`` force the kubeconfig; without them the file is
    ``$KUBECONFIG`` or ``~/.kube/config``. Nothing global is changed (the kubernetes package's
    default configuration stays as it was).
    """
    cfg = client.Configuration()
    if kubeconfig is None and context is None and in_cluster():
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as exc:
            raise EcgflowError(f"cannot use this pod's ServiceAccount: {exc}") from None
        return client.ApiClient(cfg)
    where = kubeconfig_path(kubeconfig)
    try:
        config.load_kube_config(
            config_file=where, context=context, client_configuration=cfg, persist_config=False
        )
    except (config.ConfigException, OSError) as exc:
        raise EcgflowError(
            f"no Kubernetes credentials: not in a pod, and kubeconfig {where} is unusable ({exc})"
        ) from None
    return client.ApiClient(cfg)


def kubeconfig_path(kubeconfig: str | None = None) -> str:
    """``kubeconfig``, else ``$KUBECONFIG`` (read now; may list several files), else the default."""
    return kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"


def current_namespace(default: str = "default", sa_dir: Path = SERVICE_ACCOUNT_DIR) -> str:
    """The namespace this process works in (see the module docstring for the order)."""
    env = os.environ.get("POD_NAMESPACE", "").strip()
    if env:
        return env
    try:
        namespace = (sa_dir / "namespace").read_text(encoding="utf-8").strip()
    except OSError:
        namespace = ""
    if namespace:
        return namespace
    if not in_cluster():
        try:
            _, active = config.list_kube_config_contexts(kubeconfig_path())
            namespace = ((active or {}).get("context") or {}).get("namespace") or ""
        except Exception:  # no or unreadable kubeconfig: best effort only
            namespace = ""
    return namespace or default


def current_pod_name() -> str | None:
    """The name of the pod this runs in, or None when not in a Kubernetes pod."""
    name = os.environ.get("POD_NAME", "").strip()
    if name:
        return name
    if in_cluster():
        return os.environ.get("HOSTNAME", "").strip() or None
    return None
