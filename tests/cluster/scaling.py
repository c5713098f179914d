"""One scaling episode on real pods, the same for the HPA and for KEDA: 16 concurrent requests
through the Service scale the runtime Deployment from 1 to 2+ Ready pods that take traffic, then a
trickle of 2 keeps requests in flight while it scales back to 1. No request may fail in either
direction; the figures (seconds to the second Ready pod, seconds back to one) are printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clusterkit import Kubectl, describe, pods_of, wait_until
from devkit.episode import Sample, Sampler, prometheus_query
from devkit.loadgen import Load, Tally
from realnode import AUTOSCALING, describe_pods

SCALE_UP_TIMEOUT = 600.0  # the second pod loads the model on two cores busy with the load
SCALE_DOWN_TIMEOUT = 240.0


@dataclass(frozen=True)
class Episode:
    up: Tally
    down: Tally
    samples: list[Sample]
    second_pod_ready_s: float
    back_to_one_s: float


def scale_up_and_down(
    ns: Kubectl, name: str, cluster_ip: str, prometheus: str, autoscaler: Callable[[], str]
) -> Episode:
    """The episode, with its assertions; ``autoscaler`` describes the HPA or ScaledObject when
    a wait times out."""
    assert replicas(ns, name) == (1, 1), replicas(ns, name)
    sampler = Sampler(
        replicas=lambda: replicas(ns, name),
        queue=lambda: prometheus_query(
            prometheus, f'deepseek_requests_waiting{{namespace="{ns.namespace}",service="{name}"}}'
        ),
    ).start()
    load = Load(f"http://{cluster_ip}:8080/v1", concurrency=16, max_tokens=48).start()
    try:
        wait_until(
            lambda: replicas(ns, name)[1] >= 2, SCALE_UP_TIMEOUT, "a second runtime pod Ready",
            interval=2, describe=lambda: describe(ns, name) + autoscaler() + describe_pods(ns),
        )  # fmt: skip
        second_ready = time.monotonic() - load.started
        ready_pods = {p["metadata"]["name"] for p in pods_of(ns, name) if is_ready(p)}
        # The new pods take traffic: each has finished requests of its own (kube-proxy spreads
        # the load's fresh connections over every Ready endpoint).
        served = wait_until(
            lambda: served_by(prometheus, ns, name, ready_pods), 120,
            f"requests finished by every Ready pod of {sorted(ready_pods)}", interval=2,
        )  # fmt: skip
        assert len(served) >= 2, served
        # The CR's status follows the autoscaler: ready pods out of the replicas it asked for.
        status = wait_until(
            lambda: cr_follows_deployment(ns, name), 60, "the CR's status showing the replicas"
        )
        assert int(status["ready"].split("/")[1]) >= 2, status
    finally:
        tally_up = load.stop()
    # Two clients keep requests in flight while pods are removed: the drain is part of it.
    trickle = Load(f"http://{cluster_ip}:8080/v1", concurrency=2, max_tokens=16).start()
    try:
        wait_until(
            lambda: replicas(ns, name) == (1, 1) and len(pods_of(ns, name)) == 1,
            SCALE_DOWN_TIMEOUT, "back to one pod after the load dropped", interval=2,
            describe=lambda: describe(ns, name) + autoscaler(),
        )  # fmt: skip
        back_to_one = time.monotonic() - load.stopped
    finally:
        tally_down = trickle.stop()
        samples = sampler.stop()
    print(f"second pod Ready {second_ready:.0f}s after the load started; one pod again "
          f"{back_to_one:.0f}s after it dropped\nscale-up load: {tally_up}\n"
          f"scale-down trickle: {tally_down}\nsamples:")  # fmt: skip
    for sample in samples:
        print(f"  {sample.t:6.1f}s desired={sample.desired} ready={sample.ready} {sample.queue}")
    assert tally_up.ok > 0 and tally_up.failed == 0, f"during scale-up: {tally_up.errors}"
    assert tally_down.ok > 0 and tally_down.failed == 0, f"during scale-down: {tally_down.errors}"
    # The gauge the autoscaler read went above the target while it scaled up.
    assert max(sum(s.queue.values()) for s in samples) > AUTOSCALING["targetQueueLength"], samples
    assert max(s.desired for s in samples) >= 2, samples
    cr = ns.get("dsd", name) or {}
    assert cr["status"]["replicas"] == 1 and cr["status"]["ready"] == "1/1", cr["status"]
    return Episode(tally_up, tally_down, samples, second_ready, back_to_one)


def deployment(ns: Kubectl, name: str) -> dict[str, Any]:
    found = ns.get("deployment", name)
    assert found, f"no Deployment {name}"
    return found


def replicas(ns: Kubectl, name: str) -> tuple[int, int]:
    found = deployment(ns, name)
    return int(found["spec"]["replicas"]), int(found["status"].get("readyReplicas") or 0)


def cr_follows_deployment(ns: Kubectl, name: str) -> dict[str, Any] | None:
    status = (ns.get("dsd", name) or {}).get("status", {})
    desired, ready = replicas(ns, name)
    return status if status.get("ready") == f"{ready}/{desired}" else None


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    ) and not pod["metadata"].get("deletionTimestamp")


def served_by(prometheus: str, ns: Kubectl, name: str, pods: set[str]) -> dict[str, float] | None:
    finished = prometheus_query(
        prometheus,
        f'sum by (pod) (deepseek_requests_finished_total{{namespace="{ns.namespace}",'
        f'service="{name}"}})',
    )
    counts = {pod: finished.get(pod, 0.0) for pod in pods}
    return counts if all(counts.values()) else None
