"""Every child of a DeepSeekDeployment, in the order they are applied."""

from __future__ import annotations

from typing import Any

from deepseek_operator.api import AutoscalingMode
from deepseek_operator.manifests.monitoring import service_monitor
from deepseek_operator.manifests.networking import network_policy, service
from deepseek_operator.manifests.pod import service_account
from deepseek_operator.manifests.runtime_config import config_map
from deepseek_operator.manifests.scaling import (
    horizontal_pod_autoscaler,
    pod_disruption_budget,
    scaled_object,
)
from deepseek_operator.manifests.target import Target
from deepseek_operator.manifests.workloads import workload


def children(t: Target) -> list[dict[str, Any]]:
    """Every child, in apply order: what pods reference comes before the pods."""
    return [
        service_account(t),
        config_map(t),
        service(t),
        network_policy(t),
        pod_disruption_budget(t),
        workload(t),
        *optional_children(t),
    ]


def optional_children(t: Target) -> list[dict[str, Any]]:
    """The children only some specs ask for: an autoscaler, a ServiceMonitor."""
    out = []
    mode = t.spec.autoscaling_mode
    if mode == AutoscalingMode.hpa:
        out.append(horizontal_pod_autoscaler(t))
    elif mode == AutoscalingMode.keda:
        out.append(scaled_object(t))
    if t.spec.monitoring.service_monitor:
        out.append(service_monitor(t))
    return out
