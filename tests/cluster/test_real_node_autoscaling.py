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
from clusterkit import Kubectl, condition, describe, wait_until
from realnode import AUTOSCALED, RealOperator, autoscaled_objects, cluster_part, node_images
from realnode import wait_serving as wait_serving_pod
from scaling import scale_up_and_down

pytestmark = pytest.mark.timeout(1800)

NAME = AUTOSCALED
APISERVICE = "v1beta1.custom.metrics.k8s.io"
HPA_PERIOD = 15.0  # kube-controller-manager's default --horizontal-pod-autoscaler-sync-period


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
    scale_up_and_down(ns, NAME, cluster_ip, prometheus, lambda: str(ns.get("hpa", NAME)))
