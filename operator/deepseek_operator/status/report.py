"""The whole status of a valid DeepSeekDeployment: a pure function of what was read."""

from __future__ import annotations

from typing import Any

from deepseek_operator.manifests import Target, endpoint, serving_selector
from deepseek_operator.status.conditions import (
    AUTHENTICATED,
    GPU_PLANNED,
    condition,
    merge_conditions,
)
from deepseek_operator.status.observed import Observed
from deepseek_operator.status.optional import optional_conditions
from deepseek_operator.status.readiness import from_workload, not_served, weights_verified


def status_of(
    target: Target,
    observed: Observed,
    old: dict[str, Any],
    generation: int | None,
) -> dict[str, Any]:
    """The status ``target`` has, given the observed children and the previous status (whose
    conditions keep their transition times)."""
    kind = target.workload[1]
    if kind in observed.unserved:
        fields, ready = not_served(target.nodes, target.gpus, generation)
    else:
        fields, ready = from_workload(
            observed.workload, generation, observed.pods, kind, observed.pod_events
        )
    conditions = [ready, _gpu_planned(target, generation)]
    if target.spec.model.integrity is not None:
        conditions.append(weights_verified(observed.pods, generation))
    conditions.append(_authenticated(target, generation))
    conditions += optional_conditions(target, observed, generation)
    plan = target.plan
    return {
        **fields,
        "observedGeneration": generation,
        "selector": serving_selector(target),
        "endpoint": endpoint(target.name, target.namespace, target.spec),
        "gpus": target.gpus,
        "nodes": target.nodes,
        # Every key, None included: the status is a JSON merge patch, where an absent key would
        # keep a value the plan no longer has (a product no longer pinned).
        "gpuPlan": plan.status().model_dump(by_alias=True, mode="json") if plan else None,
        "conditions": merge_conditions(old.get("conditions") or [], conditions, keep_others=False),
    }


def _gpu_planned(target: Target, generation: int | None) -> dict[str, Any]:
    plan = target.plan
    if plan is not None:
        message = f"{plan.summary()}. {plan.basis}" if plan.basis else plan.summary()
        return condition(GPU_PLANNED, True, plan.reason, message, generation)
    return condition(
        GPU_PLANNED,
        True,
        "CountGiven",
        f"{target.gpus * target.nodes} GPU(s) as set; the model is not in the catalogue, so "
        "memory was not checked",
        generation,
    )


def _authenticated(target: Target, generation: int | None) -> dict[str, Any]:
    keys = target.spec.security.api_keys
    if keys is None:
        return condition(
            AUTHENTICATED,
            False,
            "NoApiKeys",
            "no API keys: any pod the NetworkPolicy admits may call the model",
            generation,
        )
    return condition(
        AUTHENTICATED, True, "ApiKeys", f"API keys from Secret {keys.secret_name}", generation
    )
