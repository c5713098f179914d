"""One worker that keeps every DeepSeekDeployment level with the world, without finalizers.

kopf timers would repair drift per object, but every timer makes kopf put a finalizer on the
CR, and a finalizer outlives the operator: after `helm uninstall`, deleting a DeepSeekDeployment
(or its namespace) would hang forever. Instead one thread drains a work queue (workqueue.py):
child and pod events add their owner's key, every five minutes every CR's key is added for
drift repair, and a failed attempt comes back with backoff. Each key is handled on a fresh GET
of its CR (never a list snapshot that may be older than what a handler has just applied), under
the key's lock, which kopf's create/update/resume handlers take too: one reconcile per object at
a time. Any error is logged and retried; nothing ends the loop but ``stop()``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from deepseek_operator import reconcile as rc
from deepseek_operator.api import API_VERSION, KIND
from deepseek_operator.kube import Kube, Listing
from deepseek_operator.workqueue import Key, Work, WorkQueue

log = logging.getLogger(__name__)

DRIFT_REPAIR_S = float(os.environ.get("DEEPSEEK_DRIFT_REPAIR_S", "300"))
NAMESPACES_ENV = "DEEPSEEK_WATCH_NAMESPACES"  # comma-separated; empty means all namespaces
LIST_RETRY_S = 10.0  # when listing the CRs for a drift repair failed


RECHECK_S = 15.0
NOT_SETTLED = frozenset({"Pending", "Progressing", "Degraded"})


def watched_namespaces() -> list[str | None]:
    names = [n.strip() for n in os.environ.get(NAMESPACES_ENV, "").split(",") if n.strip()]
    return list(names) or [None]


def key_of(body: dict[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], meta["name"]


class Worker:
    def __init__(
        self,
        kube: Callable[[], Kube],
        queue: WorkQueue | None = None,
        clock: Callable[[], float] = time.monotonic,
        repair_every_s: float = DRIFT_REPAIR_S,
    ) -> None:
        self._kube = kube
        self._clock = clock
        self.queue = queue or WorkQueue(clock)
        self._repair_every_s = repair_every_s
        self._next_repair = clock() + repair_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deepseek-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def reconcile_now(self, key: Key) -> rc.Outcome | None:
        """For kopf's handlers: reconcile at once, under the key's lock, on a fresh GET. A
        failure is logged and left to the queue's retry (kopf would not retry an event)."""
        return self._attempt(key, Work.REPAIR)

    def step(self, timeout_s: float) -> bool:
        """Add every CR when a drift repair is due, then handle one due key (waiting at most
        ``timeout_s``); False when no key was due."""
        now = self._clock()
        if now >= self._next_repair:
            try:
                self._add_all(Work.REPAIR)
                self._next_repair = now + self._repair_every_s
            except Exception:
                log.exception("listing DeepSeekDeployments for drift repair failed; will retry")
                self._next_repair = now + LIST_RETRY_S
        taken = self.queue.take(max(0.0, min(timeout_s, self._next_repair - now)))
        if taken is None:
            return False
        self._attempt(*taken)
        return True

    def _attempt(self, key: Key, work: Work) -> rc.Outcome | None:
        try:
            outcome = self._handle(key, work)
        except Exception:
            delay = self.queue.done(key, work, ok=False)
            log.exception("%s of %s/%s failed; retrying in %.0f s", work.name, *key, delay)
            return None
        self.queue.done(key, work, ok=True)
        return outcome

    def _handle(self, key: Key, work: Work) -> rc.Outcome | None:
        with self.queue.lock(key):
            kube = self._kube()
            body = kube.get(API_VERSION, KIND, *key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                self.queue.forget(key)  # its children go with it (owner references)
                return None
            if (body.get("status") or {}).get("phase") in NOT_SETTLED:
                # Pods can wait without changing (a volume that cannot mount, a pull that
                # backs off): no watch event would come, so look again soon.
                self.queue.add(key, Work.REFRESH, delay_s=RECHECK_S)
            if work == Work.REPAIR:
                return rc.reconcile(kube, body)
            rc.refresh_status(kube, body)
            return None

    def _add_all(self, work: Work) -> None:
        kube = self._kube()
        for namespace in watched_namespaces():
            for body in kube.list(Listing(API_VERSION, KIND, namespace)):
                self.queue.add(key_of(body), work)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(timeout_s=1.0)
            except Exception:  # step() handles its own errors; this is the last resort
                log.exception("the worker loop failed; continuing")
                self._stop.wait(1.0)
