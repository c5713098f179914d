"""Periodic resync without finalizers: status refresh every minute, drift repair every five.

kopf timers would do this per object, but every timer makes kopf put a finalizer on the CR,
and a finalizer outlives the operator: after `helm uninstall`, deleting a DeepSeekDeployment
(or its namespace) would hang forever. One background thread with two LIST calls per period
costs less and leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from deepseek_operator import reconcile as rc
from deepseek_operator.api import API_VERSION, KIND
from deepseek_operator.kube import Kube, KubeError
from deepseek_operator.manifests import MANAGER

log = logging.getLogger(__name__)

STATUS_REFRESH_S = float(os.environ.get("DEEPSEEK_STATUS_REFRESH_S", "60"))
DRIFT_REPAIR_S = float(os.environ.get("DEEPSEEK_DRIFT_REPAIR_S", "300"))
NAMESPACES_ENV = "DEEPSEEK_WATCH_NAMESPACES"  # comma-separated; empty means all namespaces


def watched_namespaces() -> list[str | None]:
    names = [n.strip() for n in os.environ.get(NAMESPACES_ENV, "").split(",") if n.strip()]
    return list(names) or [None]


def resync_once(kube: Kube, repair: bool) -> int:
    """Refresh (or, with ``repair``, fully reconcile) every DeepSeekDeployment; returns count."""
    done = 0
    for namespace in watched_namespaces():
        owners = kube.list(API_VERSION, KIND, namespace, "")
        deployments = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): d
            for d in kube.list(
                "apps/v1", "Deployment", namespace, f"app.kubernetes.io/managed-by={MANAGER}"
            )
        }
        for owner in owners:
            if owner["metadata"].get("deletionTimestamp"):
                continue
            key = (owner["metadata"]["namespace"], owner["metadata"]["name"])
            try:
                if repair:
                    rc.reconcile(kube, owner)
                else:
                    rc.refresh_status(kube, owner, deployments.get(key))
                done += 1
            except KubeError as exc:  # one bad object must not stop the others
                log.warning("resync of %s/%s failed: %s", *key, exc)
    return done


class Resync:
    def __init__(self, kube_factory: Any) -> None:
        self._kube_factory = kube_factory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepseek-resync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last_repair = time.monotonic()
        while not self._stop.wait(STATUS_REFRESH_S):
            repair = time.monotonic() - last_repair >= DRIFT_REPAIR_S
            try:
                resync_once(self._kube_factory(), repair)
            except KubeError as exc:
                log.warning("resync failed, will retry: %s", exc)
            if repair:
                last_repair = time.monotonic()
