"""Objects shaped as the API server returns them (fields trimmed to what matters), for the pure
status functions. Each builder gives one state a real cluster shows."""

from __future__ import annotations

from typing import Any

SELECTOR = {"app.kubernetes.io/name": "deepseek-runtime", "app.kubernetes.io/instance": "r1"}


def deployment(
    desired: int = 1,
    ready: int = 1,
    *,
    replicas: int | None = None,
    updated: int | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    """apps/v1 Deployment r1 after the deployment controller has looked at it."""
    replicas = desired if replicas is None else replicas
    updated = desired if updated is None else updated
    available = ready >= desired
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": updated,
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                "message": 'ReplicaSet "r1-6d4cf56db6" has successfully progressed.'
                if available
                else 'ReplicaSet "r1-6d4cf56db6" is progressing.',
            },
        ],
    }
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    if replicas - ready > 0:
        status["unavailableReplicas"] = replicas - ready
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "r1", "namespace": "ai", "generation": generation},
        "spec": {"replicas": desired, "selector": {"matchLabels": SELECTOR}},
        "status": status,
    }


def pod(
    name: str = "r1-6d4cf56db6-x7k2p",
    *,
    phase: str = "Running",
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """v1 Pod of r1's ReplicaSet; a ready, running one unless told otherwise."""
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions
        if conditions is not None
        else [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
        "containerStatuses": containers
        if containers is not None
        else [
            {
                "name": "runtime",
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }
    if init_containers is not None:
        status["initContainerStatuses"] = init_containers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ai", "labels": dict(SELECTOR)},
        "spec": {"containers": [{"name": "runtime"}]},
        "status": status,
    }


def verify_weights(exit_code: int, message: str = "") -> dict[str, Any]:
    """The verify-weights init container's status once it has run."""
    terminated: dict[str, Any] = {"exitCode": exit_code, "reason": "Completed"}
    if exit_code:
        terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    return {"name": "verify-weights", "ready": exit_code == 0, "state": {"terminated": terminated}}


def pending(message: str, name: str = "r1-6d4cf56db6-x7k2p") -> dict[str, Any]:
    """A pod the scheduler could not place, with the scheduler's own message."""
    return pod(
        name,
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        containers=[],
    )


def waiting(
    reason: str,
    message: str = "",
    *,
    last: dict[str, Any] | None = None,
    container: str = "runtime",
    init: bool = False,
) -> dict[str, Any]:
    """A scheduled pod whose container waits (image pull, config error, crash loop), with its
    last termination when it has run before."""
    status: dict[str, Any] = {
        "name": container,
        "ready": False,
        "restartCount": 3 if last else 0,
        "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}},
    }
    if last is not None:
        status["lastState"] = {"terminated": last}
    scheduled = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
    ]
    if init:
        return pod(phase="Pending", conditions=scheduled, containers=[], init_containers=[status])
    built = pod(
        phase="Pending" if not last else "Running", conditions=scheduled, containers=[status]
    )
    built["spec"]["containers"][0]["resources"] = {"limits": {"memory": "32Gi"}}
    return built


def hpa(*conditions: tuple[str, str, str, str]) -> dict[str, Any]:
    """autoscaling/v2 HorizontalPodAutoscaler r1 with (type, status, reason, message) conditions
    as the HPA controller writes them."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "r1", "namespace": "ai"},
        "status": {
            "currentReplicas": 1,
            "desiredReplicas": 1,
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions
            ],
        },
    }


def leader_worker_set(
    desired: int = 1, ready: int = 1, *, replicas: int | None = None, size: int = 2
) -> dict[str, Any]:
    """leaderworkerset.x-k8s.io/v1 LeaderWorkerSet r1 as the LWS controller (v0.8) leaves it:
    counts are groups, and Available=False keeps the message it had when True."""
    replicas = desired if replicas is None else replicas
    available = ready >= desired
    status: dict[str, Any] = {
        "replicas": replicas,
        "updatedReplicas": replicas,
        "hpaPodSelector": "leaderworkerset.sigs.k8s.io/name=r1,"
        "leaderworkerset.sigs.k8s.io/worker-index=0",
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "AllGroupsReady",
                "message": "All replicas are ready",
            },
            {
                "type": "Progressing",
                "status": "False" if available else "True",
                "reason": "GroupsProgressing",
                "message": "Replicas are progressing",
            },
        ],
    }
    if ready:
        status["readyReplicas"] = ready
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "r1", "namespace": "ai", "generation": 1},
        "spec": {"replicas": desired, "leaderWorkerTemplate": {"size": size}},
        "status": status,
    }


def scaled_object(*conditions: tuple[str, str, str, str]) -> dict[str, Any]:
    """keda.sh/v1alpha1 ScaledObject r1 with (type, status, reason, message) conditions as KEDA
    v2.21's operator writes them (pkg/scaling/executor/scale_scaledobjects.go)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "r1", "namespace": "ai"},
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions
            ],
        },
    }
