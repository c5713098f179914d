"""Conditions for the optional children: Autoscaling and Monitoring, one type each, so that
each says its own problem (a single shared type kept only the last)."""

from __future__ import annotations

from typing import Any

from deepseek_operator.api import AutoscalingMode
from deepseek_operator.manifests import QUEUE_METRIC, Target
from deepseek_operator.status.conditions import AUTOSCALING, MONITORING, condition
from deepseek_operator.status.observed import Observed

# What to do when the cluster does not serve a kind the spec asks for, in the spec's words.
INSTALL_OR_TURN_OFF = {
    "HorizontalPodAutoscaler": "set autoscaling.mode to none",
    "ScaledObject": "install KEDA, or set autoscaling.mode to hpa or none",
    "ServiceMonitor": "install the prometheus-operator CRDs, or set monitoring.serviceMonitor "
    "to false",
}


def unserved_message(kind: str) -> str:
    return f"this cluster does not serve {kind}: {INSTALL_OR_TURN_OFF[kind]}"


def optional_conditions(
    target: Target, observed: Observed, generation: int | None
) -> list[dict[str, Any]]:
    out = []
    mode = target.spec.autoscaling_mode
    if mode != AutoscalingMode.none:
        kind = "ScaledObject" if mode == AutoscalingMode.keda else "HorizontalPodAutoscaler"
        out.append(_autoscaling(target, kind, observed, generation))
    if target.spec.monitoring.service_monitor:
        if "ServiceMonitor" in observed.unserved:
            out.append(
                condition(
                    MONITORING,
                    False,
                    "KindNotInstalled",
                    unserved_message("ServiceMonitor"),
                    generation,
                )
            )
        else:
            every = target.spec.monitoring.interval
            message = f"ServiceMonitor {target.name} has Prometheus scrape /metrics every {every}"
            out.append(condition(MONITORING, True, "ServiceMonitorApplied", message, generation))
    return out


# The autoscaler's own conditions that, when False, mean it is not scaling.
FAILING = {"HorizontalPodAutoscaler": ("AbleToScale", "ScalingActive"), "ScaledObject": ("Ready",)}
ACTIVE = {"HorizontalPodAutoscaler": "ScalingActive", "ScaledObject": "Ready"}


def _autoscaling(
    target: Target, kind: str, observed: Observed, generation: int | None
) -> dict[str, Any]:
    """The autoscaler's own verdict: e.g. the HPA's ScalingActive=False/FailedGetPodsMetric
    when no custom metrics API serves the queue gauge."""
    if kind in observed.unserved:
        return condition(AUTOSCALING, False, "KindNotInstalled", unserved_message(kind), generation)
    if observed.autoscaler is None:
        return condition(
            AUTOSCALING, None, "AutoscalerMissing", f"{kind} {target.name} is missing", generation
        )
    reported = {
        c.get("type"): c for c in (observed.autoscaler.get("status") or {}).get("conditions") or []
    }
    for type_ in FAILING[kind]:
        failing = reported.get(type_)
        if failing is not None and failing.get("status") == "False":
            message = f"{kind} {target.name}: {failing.get('message') or type_ + ' is False'}"
            return condition(
                AUTOSCALING, False, failing.get("reason") or type_, message, generation
            )
    active = reported.get(ACTIVE[kind])
    if active is None:
        message = f"{kind} {target.name} has not reported yet"
        return condition(AUTOSCALING, None, "NotReported", message, generation)
    if active.get("status") != "True":
        # KEDA's Ready=Unknown: a new ScaledObject, or PartialTriggerError (some triggers fail).
        message = f"{kind} {target.name}: {active.get('message') or ACTIVE[kind] + ' is Unknown'}"
        return condition(
            AUTOSCALING, None, active.get("reason") or "NotReported", message, generation
        )
    message = f"{kind} {target.name} scales on {QUEUE_METRIC}"
    return condition(AUTOSCALING, True, active.get("reason") or "Active", message, generation)
