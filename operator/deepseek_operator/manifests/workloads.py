"""What runs the pods: a Deployment when a replica fits one node, a LeaderWorkerSet when it needs
a group of nodes (sigs.k8s.io/lws: one leader pod and ``nodes - 1`` workers per replica, every
pod taking all the GPUs of its node, the leader running rank 0 and the servers)."""

from __future__ import annotations

from typing import Any

from deepseek_operator.api import AutoscalingMode
from deepseek_operator.manifests.pod import pod_template
from deepseek_operator.manifests.target import (
    DEPLOYMENT,
    LEADER_WORKER_SET,
    Target,
    child,
    selector_labels,
)

# The LWS controller names a group's workers' StatefulSet NAME-GROUP (up to three digits for
# 1000 replicas), and a StatefulSet's pods carry a controller-revision-hash label of its name
# plus 11 characters, at most 63: longer names leave the workers unable to start.
MAX_GROUP_NAME_LENGTH = 48


def workload(t: Target) -> dict[str, Any]:
    return leader_worker_set(t) if t.workload == LEADER_WORKER_SET else deployment(t)


def deployment(t: Target) -> dict[str, Any]:
    spec = {
        "selector": {"matchLabels": selector_labels(t.name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": _rolling(t)},
        "revisionHistoryLimit": 3,
        "template": pod_template(t),
    }
    return _workload(t, DEPLOYMENT, spec)


def leader_worker_set(t: Target) -> dict[str, Any]:
    spec = {
        # The workers start with the leader, not once it is ready: the leader is ready only after
        # every rank has joined and loaded its shard (LeaderReady would never start them).
        "startupPolicy": "LeaderCreated",
        # A surge group needs another set of nodes: until there is one, the rollout waits.
        "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": _rolling(t)},
        # One headless Service per group, named after its leader (NAME-0, NAME-1, ...): the
        # shared one would be named NAME, which is the API's Service.
        "networkConfig": {"subdomainPolicy": "UniquePerReplica"},
        "leaderWorkerTemplate": {
            "size": t.nodes,
            # A dead rank leaves the others waiting in a collective: recreate the group.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": pod_template(t, "server"),
            "workerTemplate": pod_template(t, "worker"),
        },
    }
    return _workload(t, LEADER_WORKER_SET, spec)


def _rolling(t: Target) -> dict[str, int]:
    rollout = t.spec.rollout
    return {"maxSurge": rollout.max_surge, "maxUnavailable": rollout.max_unavailable}


def _workload(t: Target, kind: tuple[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    if t.spec.autoscaling_mode == AutoscalingMode.none:
        # With an autoscaler the field is left out so that the HPA (or KEDA) owns it.
        spec["replicas"] = t.spec.replicas
    return child(t, kind, spec)
