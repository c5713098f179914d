"""Ready (from the Deployment and, when not all are ready, the pods' own reasons) and
WeightsVerified (from the pods' verify-weights container)."""

from __future__ import annotations

from typing import Any

from deepseek_operator.status.conditions import READY, WEIGHTS_VERIFIED, condition
from deepseek_operator.status.pods import describe, pod_problems


def from_deployment(
    deployment: dict[str, Any] | None,
    generation: int | None,
    pods: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status fields, Ready condition) from the live Deployment and its pods. When pods are
    not ready for a reason of their own (unschedulable, image pulls, crashes), the Ready
    condition's reason is the most telling one and its message says what the pods say."""
    if deployment is None:
        return (
            {"phase": "Pending", "replicas": 0, "readyReplicas": 0, "ready": "0/0"},
            condition(
                READY, False, "DeploymentMissing", "the Deployment does not exist yet", generation
            ),
        )
    desired = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    st = deployment.get("status") or {}
    replicas = int(st.get("replicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    fields = {"replicas": replicas, "readyReplicas": ready, "ready": f"{ready}/{desired}"}
    rollout_done = updated >= desired and replicas == desired
    if desired == 0:
        return (
            {**fields, "phase": "Ready"},
            condition(READY, True, "ScaledToZero", "scaled to zero replicas", generation),
        )
    if ready >= desired and rollout_done:
        return (
            {**fields, "phase": "Ready"},
            condition(READY, True, "Available", f"{ready}/{desired} replicas ready", generation),
        )
    problems = pod_problems(pods or [])
    if problems:
        reason, why = problems[0].reason, f": {describe(problems)}"
    else:
        reason, why = "", _waiting_reason(st)
    partial = ready > 0
    if partial:
        phase, fallback = ("Degraded" if rollout_done else "Progressing"), "PartiallyAvailable"
    else:
        phase, fallback = ("Progressing" if replicas else "Pending"), "ReplicasNotReady"
    message = f"{ready}/{desired} replicas ready{why}"
    return {**fields, "phase": phase}, condition(
        READY, partial, reason or fallback, message, generation
    )


def _waiting_reason(deployment_status: dict[str, Any]) -> str:
    for cond in deployment_status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            return f": {cond['message']}"
    return ""


def weights_verified(pods: list[dict[str, Any]], generation: int | None) -> dict[str, Any]:
    """WeightsVerified from the verify-weights init container of the pods."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
            if cs.get("name") != "verify-weights":
                continue
            term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get(
                "terminated"
            )
            if term and term.get("exitCode", 0) != 0:
                message = (term.get("message") or "weights differ from the manifest").strip()
                return condition(WEIGHTS_VERIFIED, False, "WeightsTampered", message, generation)
    verified = [
        cs
        for pod in pods
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []
        if cs.get("name") == "verify-weights"
        and ((cs.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
    ]
    if verified:
        return condition(
            WEIGHTS_VERIFIED,
            True,
            "ManifestMatched",
            "every weight file matches the pinned SHA-256 manifest",
            generation,
        )
    return condition(
        WEIGHTS_VERIFIED, None, "Pending", "no pod has verified the weights yet", generation
    )
