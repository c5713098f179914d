"""Where the pods may run: the GPU product, the user's node selector, tolerations, affinity."""

from __future__ import annotations

import copy
from typing import Any

from deepseek_operator.catalog import MEMORY_LABEL, PRODUCT_LABEL
from deepseek_operator.manifests.target import Target


def placement(t: Target) -> dict[str, Any]:
    gpu = t.spec.resources.gpu
    sched = t.spec.scheduling
    node_selector = dict(sched.node_selector)
    pod: dict[str, Any] = {}
    required = []
    products = pinned_products(t)
    if len(products) == 1:
        node_selector[PRODUCT_LABEL] = products[0]
    elif products:
        required.append({"key": PRODUCT_LABEL, "operator": "In", "values": list(products)})
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [{"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [tol.wire() for tol in sched.tolerations]
    pod["tolerations"] = tolerations
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


def pinned_products(t: Target) -> tuple[str, ...]:
    """The product the user named, or the cluster's products that can serve the model; none
    when any GPU will do (a product the user did not name is never pinned on a guess)."""
    if t.plan is not None:
        return t.plan.node_products
    product = t.spec.resources.gpu.product  # a model outside the catalogue, its count given
    return (product,) if product else ()


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
