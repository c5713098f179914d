"""kopf wiring: thin handlers that call into reconcile.py. Run with ``deepseek-operator run``.

One level-based reconcile serves create, resume and update; resync.py repeats it every five
minutes (drift repair) and refreshes status every minute. Child events keep status fresh
(Deployment changes) and bring back deleted children at once.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from deepseek_operator import reconcile as rc
from deepseek_operator.api import GROUP, PLURAL, VERSION
from deepseek_operator.kube import KubeError, kube
from deepseek_operator.manifests import MANAGER
from deepseek_operator.resync import Resync

RESOURCE = (GROUP, VERSION, PLURAL)
OWNED = {"app.kubernetes.io/managed-by": MANAGER}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Progress and diff-base live in annotations under our own prefix, not in status, so the
    # status schema stays ours and nothing is pruned.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own events only; no "handler succeeded"
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # Status refresh and drift repair run here rather than as kopf timers: timers make kopf
    # add a finalizer to every CR, and that finalizer blocks deletion once the operator is gone.
    memo.resync = Resync(kube)
    memo.resync.start()


@kopf.on.cleanup()
def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "resync", None) is not None:
        memo.resync.stop()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's own loaders read KUBECONFIG when called, not when a library was imported.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def reconcile(body: kopf.Body, **_: Any) -> None:
    _reconcile(dict(body))


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
def deployment_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    child = dict(body)
    owner = _retry_later(rc.owner_of, kube(), child)
    if owner is None:
        return
    if event["type"] == "DELETED":
        _reconcile(owner)
    else:
        _retry_later(rc.refresh_status, kube(), owner, child)


@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("", "v1", "configmaps", labels=OWNED)
@kopf.on.event("", "v1", "serviceaccounts", labels=OWNED)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
def child_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A deleted child comes back at once, not at the next drift repair."""
    if event["type"] != "DELETED":
        return
    owner = _retry_later(rc.owner_of, kube(), dict(body))
    if owner is not None:
        _reconcile(owner)


@kopf.on.probe(id="apiserver")
def apiserver_reachable(**_: Any) -> str:
    return kube().version()


def _reconcile(body: dict[str, Any]) -> None:
    outcome = _retry_later(rc.reconcile, kube(), body)
    if not outcome.valid:
        kopf.warn(cast(kopf.Body, body), reason="SpecInvalid", message=outcome.message)
    for warning in outcome.warnings:
        kopf.warn(cast(kopf.Body, body), reason="OptionalChildSkipped", message=warning)


def _retry_later(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except KubeError as exc:
        # The API server hiccuped (or a write conflicted): level-based, so just run again.
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from exc
