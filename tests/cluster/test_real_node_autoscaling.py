"""Autoscaling on queue length, on real pods: the runtime's deepseek_requests_waiting gauge,
scraped by Prometheus, served by prometheus-adapter (the chart's rules) as custom.metrics.k8s.io,
read by the real HPA controller, which scales the runtime Deployment the operator made. The
cluster runs `up --real-node --metrics` (conftest); the operator is its image, in a pod.

The order of the tests is the story: without the custom metrics API the CR says why it cannot
scale (the HPA's own reason); with it, a load of 16 concurrent requests scales 1 -> 2+ pods that
take traffic, and a trickle of 2 lets it scale back to 1 while requests are in flight: no
request fails in either direction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import Kubectl, condition, describe, pods_of, wait_until
from devkit.episode import Sampler, prometheus_query
from devkit.loadgen import Load
from realnode import (
    AUTOSCALED,
    AUTOSCALING,
    RealOperator,
    autoscaled_objects,
    cluster_part,
    describe_pods,
    node_images,
)
from realnode import wait_serving as wait_serving_pod

pytestmark = pytest.mark.timeout(1800)

NAME = AUTOSCALED
APISERVICE = "v1beta1.custom.metrics.k8s.io"
HPA_PERIOD = 15.0  # kube-controller-manager's default --horizontal-pod-autoscaler-sync-period
SCALE_UP_TIMEOUT = 600.0  # the second pod loads the model on two cores busy with the load
SCALE_DOWN_TIMEOUT = 240.0


def metrics_state(run_dir: Path) -> dict[str, Any]:
    return cluster_part(run_dir, "metrics", "--metrics")


@pytest.fixture(scope="module")
def autoscaled(
    cluster: Any, kubectl: Kubectl, real_operator: RealOperator
) -> Iterator[tuple[Kubectl, str]]:
    """SmolLM2 with autoscaling, Ready with one pod."""
    ns = kubectl.ns(real_operator.watched)
    ns.apply(*autoscaled_objects(node_images(cluster.run_dir)["runtime"]))
    served = wait_serving_pod(ns, NAME)
    yield ns, served.cluster_ip
    ns("delete", "dsd", NAME, "--wait=false", check=False)


def autoscaling_condition(ns: Kubectl) -> dict[str, Any] | None:
    cr = ns.get("dsd", NAME)
    return condition(cr, "Autoscaling") if cr else None


def hpa_condition(ns: Kubectl, kind: str) -> dict[str, Any] | None:
    hpa = ns.get("hpa", NAME)
    return condition(hpa, kind) if hpa else None


def test_autoscaling_true_then_false_with_the_hpas_reason_without_a_custom_metrics_api(
    cluster: Any, kubectl: Kubectl, autoscaled: tuple[Kubectl, str]
) -> None:
    ns, _ip = autoscaled
    registered = metrics_state(cluster.run_dir)["apiservice"]
    wait_active(ns)  # first the HPA reads the metric, so that what follows is the API's absence
    kubectl("delete", "apiservice", APISERVICE)
    try:

        def failing() -> dict[str, Any] | None:
            cond = autoscaling_condition(ns)
            return cond if cond and cond["status"] == "False" else None

        cond = wait_until(
            failing, 6 * HPA_PERIOD, "Autoscaling=False once custom.metrics.k8s.io is gone",
            interval=2, describe=lambda: describe(ns, NAME) + str(ns.get("hpa", NAME)),
        )  # fmt: skip
        # The HPA's own verdict, passed through, not a guess of the operator's.
        active = hpa_condition(ns, "ScalingActive")
        assert active and active["status"] == "False", active
        assert cond["reason"] == active["reason"] == "FailedGetPodsMetric", (cond, active)
        assert "deepseek_requests_waiting" in cond["message"], cond
        # No custom metrics API at all, not merely a metric the adapter has not listed yet.
        assert "custom.metrics.k8s.io" in cond["message"], cond
    finally:
        kubectl.apply(registered)
    wait_until(
        lambda: kubectl.get("apiservice", APISERVICE) and apiservice_available(kubectl),
        60, f"{APISERVICE} Available again",
    )  # fmt: skip


def wait_active(ns: Kubectl) -> None:
    """Autoscaling=True with the HPA's own ScalingActive reason: it reads the queue metric."""

    def active() -> dict[str, Any] | None:
        cond = autoscaling_condition(ns)
        return cond if cond and cond["status"] == "True" else None

    cond = wait_until(
        active, 8 * HPA_PERIOD, "Autoscaling=True: the HPA reads the queue metric", interval=2,
        describe=lambda: describe(ns, NAME) + str(ns.get("hpa", NAME)),
    )  # fmt: skip
    assert cond["reason"] == "ValidMetricFound", cond
    assert (hpa_condition(ns, "ScalingActive") or {}).get("reason") == "ValidMetricFound"


def apiservice_available(kubectl: Kubectl) -> bool:
    service = kubectl.get("apiservice", APISERVICE) or {}
    return any(
        c["type"] == "Available" and c["status"] == "True"
        for c in service.get("status", {}).get("conditions", [])
    )


def test_hpa_scales_real_pods_on_queue_length_and_no_request_fails(
    cluster: Any, kubectl: Kubectl, autoscaled: tuple[Kubectl, str]
) -> None:
    ns, cluster_ip = autoscaled
    prometheus = metrics_state(cluster.run_dir)["prometheus"]
    wait_active(ns)
    assert deployment(ns)["spec"]["replicas"] == 1

    sampler = Sampler(
        replicas=lambda: replicas(ns),
        queue=lambda: prometheus_query(
            prometheus, f'deepseek_requests_waiting{{namespace="{ns.namespace}",service="{NAME}"}}'
        ),
    ).start()
    load = Load(f"http://{cluster_ip}:8080/v1", concurrency=16, max_tokens=48).start()
    try:
        wait_until(
            lambda: replicas(ns)[1] >= 2, SCALE_UP_TIMEOUT, "a second runtime pod Ready",
            interval=2, describe=lambda: describe(ns, NAME) + describe_pods(ns),
        )  # fmt: skip
        ready_pods = {p["metadata"]["name"] for p in pods_of(ns, NAME) if is_ready(p)}
        # The new pods take traffic: each has finished requests of its own (kube-proxy spreads
        # the load's fresh connections over every Ready endpoint).
        served = wait_until(
            lambda: served_by(prometheus, ns, ready_pods), 120,
            f"requests finished by every Ready pod of {sorted(ready_pods)}", interval=2,
        )  # fmt: skip
        assert len(served) >= 2, served
        # The CR's status follows the HPA: ready pods out of the replicas it asked for.
        status = wait_until(
            lambda: cr_follows_deployment(ns), 60, "the CR's status showing the HPA's replicas"
        )
        assert int(status["ready"].split("/")[1]) >= 2, status
    finally:
        tally_up = load.stop()
    # Two clients keep requests in flight while the HPA removes pods: the drain is part of it.
    trickle = Load(f"http://{cluster_ip}:8080/v1", concurrency=2, max_tokens=16).start()
    try:
        wait_until(
            lambda: replicas(ns) == (1, 1) and len(pods_of(ns, NAME)) == 1,
            SCALE_DOWN_TIMEOUT, "back to one pod after the load dropped", interval=2,
            describe=lambda: describe(ns, NAME) + str(ns.get("hpa", NAME)),
        )  # fmt: skip
    finally:
        tally_down = trickle.stop()
        samples = sampler.stop()
    print(f"scale-up load: {tally_up}\nscale-down trickle: {tally_down}\nsamples:")
    for sample in samples:
        print(f"  {sample.t:6.1f}s desired={sample.desired} ready={sample.ready} {sample.queue}")
    assert tally_up.ok > 0 and tally_up.failed == 0, f"during scale-up: {tally_up.errors}"
    assert tally_down.ok > 0 and tally_down.failed == 0, f"during scale-down: {tally_down.errors}"
    # The gauge the HPA read went above the target while it scaled up.
    assert max(sum(s.queue.values()) for s in samples) > AUTOSCALING["targetQueueLength"], samples
    assert max(s.desired for s in samples) >= 2, samples
    cr = ns.get("dsd", NAME) or {}
    assert cr["status"]["replicas"] == 1 and cr["status"]["ready"] == "1/1", cr["status"]


def deployment(ns: Kubectl) -> dict[str, Any]:
    found = ns.get("deployment", NAME)
    assert found, f"no Deployment {NAME}"
    return found


def replicas(ns: Kubectl) -> tuple[int, int]:
    found = deployment(ns)
    return int(found["spec"]["replicas"]), int(found["status"].get("readyReplicas") or 0)


def cr_follows_deployment(ns: Kubectl) -> dict[str, Any] | None:
    status = (ns.get("dsd", NAME) or {}).get("status", {})
    desired, ready = replicas(ns)
    return status if status.get("ready") == f"{ready}/{desired}" else None


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    ) and not pod["metadata"].get("deletionTimestamp")


def served_by(prometheus: str, ns: Kubectl, pods: set[str]) -> dict[str, float] | None:
    finished = prometheus_query(
        prometheus,
        f'sum by (pod) (deepseek_requests_finished_total{{namespace="{ns.namespace}",'
        f'service="{NAME}"}})',
    )
    counts = {pod: finished.get(pod, 0.0) for pod in pods}
    return counts if all(counts.values()) else None
