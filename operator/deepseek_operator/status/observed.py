"""What the reconcile layer read about a DeepSeekDeployment's children, in one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Observed:
    """A snapshot of the live children the status is computed from, as the API returned them.

    ``workload`` (the Deployment or LeaderWorkerSet that runs the pods) and ``autoscaler`` (the
    HPA or KEDA ScaledObject) are None when they do not exist (yet); ``pods`` are the
    workload's pods (a group's workers included), read when the status needs them;
    ``unserved`` are the kinds of wanted children the API server does not serve (no CRD);
    ``pod_events`` the FailedMount events about the pods."""

    workload: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    autoscaler: dict[str, Any] | None = None
    unserved: frozenset[str] = frozenset()
    # Events about those pods that their status does not carry (a volume that cannot mount
    # leaves a pod in ContainerCreating and says why only in a FailedMount event).
    pod_events: list[dict[str, Any]] = field(default_factory=list)
