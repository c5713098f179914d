"""The status never stays silent: each problem the operator sees gets its own condition, in the
user's words, from what the real API server, scheduler and controllers report."""

from __future__ import annotations

from typing import Any

import pytest
from clusterkit import Kubectl, OperatorProcess, condition, dsd, wait_until

pytestmark = pytest.mark.cluster


def conditions_of(ns: Kubectl, name: str) -> dict[str, dict[str, Any]]:
    cr = ns.get("dsd", name) or {}
    return {c["type"]: c for c in (cr.get("status") or {}).get("conditions") or []}


def test_missing_keda_and_prometheus_operator_are_two_conditions(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """The local control plane serves neither KEDA's ScaledObject nor the ServiceMonitor."""
    ns = kubectl.ns(namespace)
    spec = {"autoscaling": {"mode": "keda"}, "monitoring": {"serviceMonitor": True}}
    ns.apply(dsd("optional", spec))

    def both() -> dict[str, dict[str, Any]] | None:
        found = conditions_of(ns, "optional")
        return found if {"Autoscaling", "Monitoring"} <= set(found) else None

    found = wait_until(both, 60, "Autoscaling and Monitoring conditions", describe=operator.tail)
    assert "Warning" not in found
    assert found["Autoscaling"]["status"] == "False"
    assert found["Autoscaling"]["reason"] == "KindNotInstalled"
    assert "ScaledObject" in found["Autoscaling"]["message"]
    assert found["Monitoring"]["status"] == "False"
    assert found["Monitoring"]["reason"] == "KindNotInstalled"
    assert "ServiceMonitor" in found["Monitoring"]["message"]
    assert condition(ns.get("dsd", "optional") or {}, "Ready") is not None


def events_about(ns: Kubectl, name: str, reason: str) -> list[dict[str, Any]]:
    items = ns.json("events", "--field-selector", f"involvedObject.name={name},reason={reason}")
    return [e for e in items["items"] if e["involvedObject"]["kind"] == "DeepSeekDeployment"]


def ready_reason(ns: Kubectl, name: str, reason: str) -> dict[str, Any] | None:
    ready = conditions_of(ns, name).get("Ready")
    return ready if ready and ready["reason"] == reason else None


def test_a_missing_pvc_is_said_in_the_schedulers_words(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    spec = {"model": {"source": {"image": None, "pvc": {"claimName": "models", "path": "r1"}}}}
    ns.apply(dsd("no-pvc", spec))
    ready = wait_until(
        lambda: ready_reason(ns, "no-pvc", "Unschedulable"), 60, "Ready=Unschedulable"
    )
    assert ready["status"] == "False"
    assert 'persistentvolumeclaim "models" not found' in ready["message"], ready
    (event,) = wait_until(lambda: events_about(ns, "no-pvc", "Unschedulable"), 30, "an event")
    assert event["type"] == "Warning" and event["message"] == ready["message"]


def test_too_few_gpus_is_said_in_the_schedulers_words(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """16 GPUs per pod: neither fake node (8 each) can take one, whatever else runs."""
    ns = kubectl.ns(namespace)
    spec = {
        "model": {"name": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"},
        "resources": {"gpu": {"count": 16, "maxPerNode": 16}},
    }
    ns.apply(dsd("greedy", spec))
    ready = wait_until(
        lambda: ready_reason(ns, "greedy", "Unschedulable"), 60, "Ready=Unschedulable"
    )
    assert "Insufficient nvidia.com/gpu" in ready["message"], ready
    assert events_about(ns, "greedy", "Unschedulable")


def test_the_hpas_own_failure_reaches_the_cr(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """No custom metrics API here: the HPA cannot read deepseek_requests_waiting."""
    ns = kubectl.ns(namespace)
    ns.apply(dsd("scaled", {"autoscaling": {"mode": "hpa", "minReplicas": 1, "maxReplicas": 2}}))

    def failing() -> dict[str, Any] | None:
        found = conditions_of(ns, "scaled").get("Autoscaling")
        return found if found and found["status"] == "False" else None

    cond = wait_until(failing, 90, "Autoscaling=False from the HPA", describe=operator.tail)
    assert cond["reason"] == "FailedGetPodsMetric", cond
    assert "custom metrics API" in cond["message"]
    assert wait_until(lambda: events_about(ns, "scaled", "FailedGetPodsMetric"), 30, "an event")
