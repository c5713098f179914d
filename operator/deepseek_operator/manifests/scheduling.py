"""Where the pods may run: the GPU product, the user's node selector, tolerations, affinity."""

from __future__ import annotations

import copy
from typing import Any

from deepseek_operator.manifests.target import Target

PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB, as GPU feature discovery writes it


def placement(t: Target) -> dict[str, Any]:
    gpu = t.spec.resources.gpu
    sched = t.spec.scheduling
    node_selector = dict(sched.node_selector)
    pod: dict[str, Any] = {}
    if t.plan is not None and t.plan.product:
        node_selector[PRODUCT_LABEL] = t.plan.product
    elif gpu.product:
        node_selector[PRODUCT_LABEL] = gpu.product
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [{"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [tol.wire() for tol in sched.tolerations]
    pod["tolerations"] = tolerations
    required = []
    if gpu.memory_gi_b and not gpu.product:
        # At least the memory asked for (Gt, so one MiB less).
        floor = str(int(gpu.memory_gi_b * 1024) - 1)
        required.append({"key": MEMORY_LABEL, "operator": "Gt", "values": [floor]})
    affinity = require_of_nodes(sched.affinity, required)
    if affinity:
        pod["affinity"] = affinity
    if sched.priority_class_name:
        pod["priorityClassName"] = sched.priority_class_name
    return pod


def require_of_nodes(
    affinity: dict[str, Any] | None, expressions: list[dict[str, Any]]
) -> dict[str, Any]:
    """A copy of the user's affinity in which every node must also match ``expressions``.

    Required nodeSelectorTerms are ORed and the expressions within one term ANDed, so the
    expressions join each of the user's terms (or make the only term when there is none):
    the user's own requirement still holds, and ours on top of it."""
    out = copy.deepcopy(affinity or {})
    if not expressions:
        return out
    node = out.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchExpressions": [*(term.get("matchExpressions") or []), *expressions]}
        for term in terms
    ]
    return out
