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
