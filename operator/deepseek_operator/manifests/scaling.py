"""How many pods: the HPA or KEDA ScaledObject on the queue gauge, and the disruption budget."""

from __future__ import annotations

from typing import Any

from deepseek_operator.manifests.target import QUEUE_METRIC, Target, object_meta, selector_labels


def pod_disruption_budget(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(t),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(t.name)}},
    }


def horizontal_pod_autoscaler(t: Target) -> dict[str, Any]:
    auto = t.spec.autoscaling
    assert auto is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(auto.target_queue_length),
                        },
                    },
                }
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": auto.scale_down_stabilization_seconds},
                "scaleUp": {"stabilizationWindowSeconds": 0},
            },
        },
    }


def scaled_object(t: Target) -> dict[str, Any]:
    auto = t.spec.autoscaling
    assert auto is not None
    query = f'sum({QUEUE_METRIC}{{namespace="{t.namespace}",service="{t.name}"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": object_meta(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": auto.prometheus_address,
                        "query": query,
                        "threshold": str(auto.target_queue_length),
                    },
                }
            ],
        },
    }
