"""Ready (from the Deployment or LeaderWorkerSet and, when not all are ready, the pods' own
reasons) and WeightsVerified (from the pods' verify-weights container)."""

from __future__ import annotations

from typing import Any

from deepseek_operator.status.conditions import READY, WEIGHTS_VERIFIED, condition
from deepseek_operator.status.pods import describe, pod_problems

# What a replica is, in the words of each kind's status counts.
UNITS = {"Deployment": "replicas", "LeaderWorkerSet": "groups"}
NOT_SERVED = "LeaderWorkerSetNotInstalled"


def from_workload(
    workload: dict[str, Any] | None,
    generation: int | None,
    pods: list[dict[str, Any]] | None = None,
    kind: str = "Deployment",
    pod_events: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status fields, Ready condition) from the live Deployment or LeaderWorkerSet (whose
    counts are groups) and its pods. When pods are not ready for a reason of their own
    (unschedulable, image pulls, crashes), the Ready condition's reason is the most telling one
    and its message says what the pods say."""
    unit = UNITS[kind]
    if workload is None:
        return _nothing("Pending"), condition(
            READY, False, f"{kind}Missing", f"the {kind} does not exist yet", generation
        )
    desired = int((workload.get("spec") or {}).get("replicas", 1) or 0)
    st = workload.get("status") or {}
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
            condition(READY, True, "Available", f"{ready}/{desired} {unit} ready", generation),
        )
    problems = pod_problems(pods or [], pod_events or [])
    if problems:
        reason, why = problems[0].reason, f": {describe(problems)}"
    else:
        # A LeaderWorkerSet's Available=False keeps the message it had when True: not a reason.
        reason, why = "", _waiting_reason(st) if kind == "Deployment" else ""
    partial = ready > 0
    if partial:
        phase, fallback = ("Degraded" if rollout_done else "Progressing"), "PartiallyAvailable"
    else:
        phase, fallback = ("Progressing" if replicas else "Pending"), "ReplicasNotReady"
    message = f"{ready}/{desired} {unit} ready{why}"
    return {**fields, "phase": phase}, condition(
        READY, partial, reason or fallback, message, generation
    )


def not_served(
    nodes: int, gpus: int, generation: int | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(status fields, Ready condition) when a replica needs a group of nodes and the cluster
    does not serve LeaderWorkerSets: nothing was applied, and the user is told what to do."""
    message = (
        f"each replica needs {nodes} nodes of {gpus} GPUs, which runs as a LeaderWorkerSet "
        "(leaderworkerset.x-k8s.io/v1), and this cluster does not serve that kind: install "
        "LeaderWorkerSet (sigs.k8s.io/lws v0.8 or later: its CRD and controller), or set "
        "resources.gpu.maxNodes to 1 to be told what fits on one node. The children were "
        "left as they are."
    )
    return _nothing("Pending"), condition(READY, False, NOT_SERVED, message, generation)


def _nothing(phase: str) -> dict[str, Any]:
    return {"phase": phase, "replicas": 0, "readyReplicas": 0, "ready": "0/0"}


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
