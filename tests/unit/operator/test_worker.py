"""The worker (issue 15, items 2 and 3): fresh state, one path per object, and a loop that
survives any error and retries, on an in-memory API (fake_kube.py)."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
import yaml
from fake_kube import FakeKube
from specs import cr

from deepseek_operator import handlers
from deepseek_operator.kube import KubeError, Listing
from deepseek_operator.worker import Worker
from deepseek_operator.workqueue import Work, WorkQueue

KEY = ("ai", "r1")
CR_KEY = ("deepseek.ai/v1alpha1", "DeepSeekDeployment", "ai", "r1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker_on(kube: FakeKube, clock: Clock | None = None, repair_every_s: float = 300) -> Worker:
    clock = clock or Clock()
    return Worker(lambda: kube, WorkQueue(clock), clock, repair_every_s)  # type: ignore[arg-type,return-value]


def max_queue(kube: FakeKube) -> int:
    config = kube.find("ConfigMap", "ai", "r1-runtime")
    assert config is not None
    return int(yaml.safe_load(config["data"]["runtime.yaml"])["max_queue"])


def fail_first(times: int, exc: Exception, method: str = "get", kind: str = "DeepSeekDeployment"):  # type: ignore[no-untyped-def]
    left = [times]

    def before(called: str, called_kind: str) -> None:
        if (called, called_kind) == (method, kind) and left[0] > 0:
            left[0] -= 1
            raise exc

    return before


def test_drift_repair_reconciles_the_cr_as_it_is_now_not_as_listed() -> None:
    """A list snapshot can be older than what a handler has just applied; the worker lists only
    to learn the keys, and reconciles each on a fresh GET."""
    kube = FakeKube()
    kube.put(cr())
    stale = copy.deepcopy(kube.objects[CR_KEY])
    kube.put(cr(**{"runtime": {"maxQueueLength": 10}}))  # generation 2
    fresh_list = kube.list

    def stale_list(listing: Listing) -> Any:
        return [stale] if listing.kind == "DeepSeekDeployment" else fresh_list(listing)

    kube.list = stale_list  # type: ignore[method-assign]
    clock = Clock()
    worker = worker_on(kube, clock, repair_every_s=300)
    clock.now += 300
    assert worker.step(0)
    assert max_queue(kube) == 10
    assert kube.objects[CR_KEY]["status"]["observedGeneration"] == 2


def test_a_failure_is_logged_and_retried_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube(before=fail_first(1, RuntimeError("boom: not a KubeError")))
    kube.put(cr())
    clock = Clock()
    worker = worker_on(kube, clock)
    worker.queue.add(KEY, Work.REPAIR)
    assert worker.step(0)  # the failure is handled, not raised
    assert "boom" in caplog.text and "retrying in 1 s" in caplog.text
    assert kube.find("Deployment", "ai", "r1") is None
    assert worker.queue.pending() == {KEY: Work.REPAIR}
    assert not worker.step(0)  # backing off
    clock.now += 1
    assert worker.step(0)
    assert kube.find("Deployment", "ai", "r1") is not None
    assert kube.objects[CR_KEY]["status"]["observedGeneration"] == 1


def test_the_worker_thread_survives_an_exception() -> None:
    """The real loop, in its own thread: the first attempt raises, the retry reconciles."""
    reconciled = threading.Event()
    fail_once = fail_first(1, ValueError("injected"))

    def before(method: str, kind: str) -> None:
        fail_once(method, kind)
        if method == "patch_status":
            reconciled.set()

    kube = FakeKube(before=before)
    kube.put(cr())
    worker = Worker(lambda: kube, WorkQueue(first_retry_s=0.01))  # type: ignore[arg-type,return-value]
    worker.start()
    try:
        worker.queue.add(KEY, Work.REPAIR)
        assert reconciled.wait(timeout=30), "the retry never reconciled"
        assert worker.alive()
    finally:
        worker.stop()
    assert kube.find("Deployment", "ai", "r1") is not None


def test_a_handler_failure_goes_to_the_queue_not_to_kopf() -> None:
    """kopf never retries event handlers; the worker does, with backoff."""
    kube = FakeKube(
        before=fail_first(1, KubeError(500, "etcdserver: leader changed"), "apply", "Deployment")
    )
    kube.put(cr())
    clock = Clock()
    worker = worker_on(kube, clock)
    assert worker.reconcile_now(KEY) is None
    assert worker.queue.pending() == {KEY: Work.REPAIR}
    clock.now += 1
    assert worker.step(0)
    assert kube.find("Deployment", "ai", "r1") is not None


def test_everything_for_a_key_happens_under_its_lock() -> None:
    kube = FakeKube()
    kube.put(cr())
    worker = worker_on(kube)
    unlocked: list[tuple[str, str]] = []
    kube.before = lambda m, k: (
        unlocked.append((m, k)) if not worker.queue.lock(KEY).locked() else None
    )
    worker.reconcile_now(KEY)
    worker.queue.add(KEY, Work.REFRESH)
    worker.step(0)
    assert unlocked == []
    assert ("get", "DeepSeekDeployment") in [(m, k) for m, k, _ in kube.calls]


def test_a_deleted_cr_is_forgotten_and_nothing_is_written() -> None:
    kube = FakeKube()
    worker = worker_on(kube)
    worker.queue.done(KEY, Work.REPAIR, ok=False)  # a retry was pending
    worker.queue.add(KEY, Work.REPAIR)
    assert worker.step(0)
    assert kube.objects == {} and worker.queue.pending() == {}


class Memo:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker


def child(kind: str, owner: str = "r1") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": owner,
            "namespace": "ai",
            "labels": {"app.kubernetes.io/instance": owner},
            "ownerReferences": [
                {"apiVersion": "deepseek.ai/v1alpha1", "kind": "DeepSeekDeployment", "name": owner}
            ],
        },
    }


def test_events_only_add_keys() -> None:
    kube = FakeKube(before=fail_first(99, KubeError(503, "down"), "get"))  # no I/O happens
    memo = Memo(worker_on(kube))
    handlers.pod_event(body=child("Pod"), memo=memo)
    assert memo.worker.queue.pending() == {KEY: Work.REFRESH}
    handlers.status_source_event(event={"type": "MODIFIED"}, body=child("Deployment"), memo=memo)
    assert memo.worker.queue.pending() == {KEY: Work.REFRESH}
    handlers.child_event(event={"type": "MODIFIED"}, body=child("Service", "other"), memo=memo)
    assert ("ai", "other") not in memo.worker.queue.pending()
    handlers.child_event(event={"type": "DELETED"}, body=child("Service"), memo=memo)
    assert memo.worker.queue.pending() == {KEY: Work.REPAIR}
    assert kube.calls == []


def test_in_cluster_login_needs_no_cluster_dns() -> None:
    """The kubernetes Service's address from the kubelet's environment, as client-go finds it
    (kopf alone would name kubernetes.default.svc, which a cluster without DNS cannot resolve)."""
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert handlers.in_cluster_server(env) == "https://10.96.0.1:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert handlers.in_cluster_server(v6) == "https://[fd00::1]:6443"
    assert handlers.in_cluster_server({}) is None


def test_a_cr_whose_pods_are_not_settled_is_looked_at_again_soon() -> None:
    """A pod stuck on a volume that cannot mount changes nothing a watch would report; the
    worker comes back to a CR that is not Ready, and stops once it is."""
    kube = FakeKube()
    kube.put(cr())
    clock = Clock()
    worker = worker_on(kube, clock)
    worker.reconcile_now(KEY)  # the Deployment is made; its pods are not ready yet
    assert kube.objects[CR_KEY]["status"]["phase"] != "Ready"
    worker.reconcile_now(KEY)
    assert worker.queue.pending() == {KEY: Work.REFRESH}
    assert not worker.step(0)  # not due yet
    clock.now += 15
    assert worker.step(0)
