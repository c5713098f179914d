"""How many pods: the HPA or KEDA ScaledObject on the queue gauge, and the disruption budget."""

from __future__ import annotations

from typing import Any

from deepseek_operator.api import AutoscalingSpec
from deepseek_operator.manifests.target import QUEUE_METRIC, Target, child, selector_labels


def pod_disruption_budget(t: Target) -> dict[str, Any]:
    selector = {"matchLabels": selector_labels(t.name)}
    return child(
        t, ("policy/v1", "PodDisruptionBudget"), {"maxUnavailable": 1, "selector": selector}
    )


def horizontal_pod_autoscaler(t: Target) -> dict[str, Any]:
    auto = _autoscaling(t)
    target = {"type": "AverageValue", "averageValue": str(auto.target_queue_length)}
    return _autoscaler(
        t,
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        minReplicas=auto.min_replicas,
        maxReplicas=auto.max_replicas,
        metrics=[{"type": "Pods", "pods": {"metric": {"name": QUEUE_METRIC}, "target": target}}],
        behavior={**_scale_down(auto), "scaleUp": {"stabilizationWindowSeconds": 0}},
    )


def scaled_object(t: Target) -> dict[str, Any]:
    auto = _autoscaling(t)
    query = f'sum({QUEUE_METRIC}{{namespace="{t.namespace}",service="{t.name}"}})'
    trigger = {
        "serverAddress": auto.prometheus_address,
        "query": query,
        "threshold": str(auto.target_queue_length),
    }
    return _autoscaler(
        t,
        ("keda.sh/v1alpha1", "ScaledObject"),
        minReplicaCount=auto.min_replicas,
        maxReplicaCount=auto.max_replicas,
        advanced={"horizontalPodAutoscalerConfig": {"behavior": _scale_down(auto)}},
        triggers=[{"type": "prometheus", "metadata": trigger}],
    )


def _autoscaling(t: Target) -> AutoscalingSpec:
    assert t.spec.autoscaling is not None, "only built when the spec asks for autoscaling"
    return t.spec.autoscaling


def _autoscaler(t: Target, kind: tuple[str, str], **spec: Any) -> dict[str, Any]:
    """An autoscaler of the runtime Deployment or LeaderWorkerSet (whose scale subresource
    counts groups, and selects their leaders); ``spec`` is what the kind adds to its target."""
    ref = {"apiVersion": t.workload[0], "kind": t.workload[1], "name": t.name}
    return child(t, kind, {"scaleTargetRef": ref, **spec})


def _scale_down(auto: AutoscalingSpec) -> dict[str, Any]:
    return {"scaleDown": {"stabilizationWindowSeconds": auto.scale_down_stabilization_seconds}}
