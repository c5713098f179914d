"""kopf wiring: thin handlers over the reconcile layer. Run with ``deepseek-operator run``.

create, resume and update reconcile at once, through the worker (worker.py) so that they take
the same per-object lock and read the CR fresh; every event of a child, a pod or the
autoscaler only adds the owner's key to the worker's queue (a status refresh, or a repair
when a child was deleted): nothing here can fail in a way kopf would have to retry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf

from deepseek_operator import reconcile as rc
from deepseek_operator.api import GROUP, PLURAL, VERSION
from deepseek_operator.kube import kube
from deepseek_operator.manifests import MANAGER
from deepseek_operator.worker import Worker, key_of
from deepseek_operator.workqueue import Work

RESOURCE = (GROUP, VERSION, PLURAL)
OWNED = {"app.kubernetes.io/managed-by": MANAGER}
INSTANCE = "app.kubernetes.io/instance"


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
    # Drift repair runs in this worker rather than as kopf timers: timers make kopf add a
    # finalizer to every CR, and that finalizer blocks deletion once the operator is gone.
    memo.worker = Worker(kube)
    memo.worker.start()


@kopf.on.cleanup()
def stop_worker(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "worker", None) is not None:
        memo.worker.stop()


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server as client-go's InClusterConfig finds it: the kubernetes Service's address
    from the environment the kubelet sets. kopf's own service-account login names
    kubernetes.default.svc instead, which needs cluster DNS (a cluster without it, like the
    local real node, leaves the operator unable to connect)."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's own loaders read KUBECONFIG when called, not when a library was imported.
    found = kopf.login_with_service_account(**kwargs)
    server = in_cluster_server(os.environ)
    if found is not None and server is not None:
        return dataclasses.replace(found, server=server)
    return found or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    # Problems reach the user as conditions and events (reconcile.write_status), not here.
    outcome = memo.worker.reconcile_now(key_of(dict(body)))
    if outcome is not None:
        logger.info("%s: %s", "reconciled" if outcome.valid else "spec invalid", outcome.message)


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
# Watched once its CRD exists (kopf follows CRDs as they come and go).
@kopf.on.event("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", labels=OWNED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
# KEDA's verdict (its Ready condition) is on the ScaledObject: the HPA that KEDA makes from it is
# owned by the ScaledObject, not by the CR, so its events name no owner here.
@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects", labels=OWNED)
def status_source_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The status reports on these: refresh it; bring the child back if it was deleted."""
    _enqueue(memo, rc.owner_name(dict(body)), body, event["type"] == "DELETED")


@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("", "v1", "configmaps", labels=OWNED)
@kopf.on.event("", "v1", "serviceaccounts", labels=OWNED)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
def child_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A deleted child comes back at once, not at the next drift repair."""
    if event["type"] == "DELETED":
        _enqueue(memo, rc.owner_name(dict(body)), body, repair=True)


@kopf.on.event("", "v1", "pods", labels=OWNED)
def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Pods say why they are not ready (unschedulable, image pulls, crashes): refresh."""
    _enqueue(memo, (body.get("metadata") or {}).get("labels", {}).get(INSTANCE), body)


@kopf.on.probe(id="apiserver")
def apiserver_reachable(**_: Any) -> str:
    return kube().version()


def _enqueue(memo: kopf.Memo, owner: str | None, body: kopf.Body, repair: bool = False) -> None:
    if owner is not None:
        key = (str(body["metadata"]["namespace"]), owner)
        memo.worker.queue.add(key, Work.REPAIR if repair else Work.REFRESH)
