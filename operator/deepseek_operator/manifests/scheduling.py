"""Where the pods may run: the GPU product, the user's node selector, tolerations, affinity."""

from __future__ import annotations

from typing import Any

from deepseek_operator.manifests.target import Target


def placement(t: Target) -> dict[str, Any]:
    gpu = t.spec.resources.gpu
    sched = t.spec.scheduling
    node_selector = dict(sched.node_selector)
    pod: dict[str, Any] = {}
    if t.plan is not None and t.plan.product:
        node_selector["nvidia.com/gpu.product"] = t.plan.product
    elif gpu.product:
        node_selector["nvidia.com/gpu.product"] = gpu.product
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [{"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [tol.wire() for tol in sched.tolerations]
    pod["tolerations"] = tolerations
    affinity = dict(sched.affinity or {})
    if gpu.memory_gi_b and not gpu.product:
        # GPU feature discovery labels memory in MiB; require at least what was asked for.
        term = {
            "matchExpressions": [
                {
                    "key": "nvidia.com/gpu.memory",
                    "operator": "Gt",
                    "values": [str(int(gpu.memory_gi_b * 1024) - 1)],
                }
            ]
        }
        affinity.setdefault("nodeAffinity", {})[
            "requiredDuringSchedulingIgnoredDuringExecution"
        ] = {"nodeSelectorTerms": [term]}
    if affinity:
        pod["affinity"] = affinity
    if sched.priority_class_name:
        pod["priorityClassName"] = sched.priority_class_name
    return pod
