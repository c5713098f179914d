"""The DeepSeekDeployment being built for, and what every child shares: names, labels, ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepseek_operator.api import DeepSeekDeploymentSpec
from deepseek_operator.sizing import GpuPlan, Limits, split_count

APP = "deepseek-runtime"
MANAGER = "deepseek-operator"
HTTP_PORT = 8080
# /metrics alone (the runtime's --metrics-port): the monitoring namespace's port, so scraping
# never needs the API (HTTP_PORT keeps /metrics for the inference extension's endpoint picker).
METRICS_PORT = 8090
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
RUNTIME_UID = 10001
QUEUE_METRIC = "deepseek_requests_waiting"
CONFIG_HASH_ANNOTATION = "deepseek.ai/config-hash"
DEPLOYMENT = ("apps/v1", "Deployment")
LEADER_WORKER_SET = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
# Set by the LWS controller on every pod of a group: "0" on the leader (sigs.k8s.io/lws,
# api/leaderworkerset/v1: WorkerIndexLabelKey).
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# Where rank 0 (on the leader) listens for the other ranks of its group to join.
RENDEZVOUS_PORT = 29500


@dataclass(frozen=True, slots=True)
class Target:
    """The DeepSeekDeployment being built for."""

    name: str
    namespace: str
    spec: DeepSeekDeploymentSpec
    plan: GpuPlan | None = None

    @property
    def layout(self) -> tuple[int, int]:
        """(GPUs per pod, pods per replica): one pod, or a group with one pod per node."""
        if self.plan is not None:
            return self.plan.gpus_per_node, self.plan.nodes
        gpu = self.spec.resources.gpu  # a model outside the catalogue, its count given
        if gpu.count == "auto":
            return 1, 1
        return split_count(int(gpu.count), Limits.of(gpu))

    @property
    def gpus(self) -> int:
        """GPUs each pod requests."""
        return self.layout[0]

    @property
    def nodes(self) -> int:
        return self.layout[1]

    @property
    def tensor_parallel(self) -> int:
        return self.gpus * self.nodes

    @property
    def workload(self) -> tuple[str, str]:
        """(apiVersion, kind) of what runs the pods: a group of nodes is a LeaderWorkerSet."""
        return LEADER_WORKER_SET if self.nodes > 1 else DEPLOYMENT

    @property
    def scheme(self) -> str:
        return "HTTPS" if self.spec.security.tls else "HTTP"


def selector_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": name}


def selector(name: str) -> str:
    """Every pod's label selector as a string (list calls), a group's workers included."""
    return _as_selector(selector_labels(name))


def serving_labels(t: Target) -> dict[str, str]:
    """The pods that serve: all of a Deployment's, a LeaderWorkerSet group's leader only."""
    leader = {WORKER_INDEX_LABEL: "0"} if t.workload == LEADER_WORKER_SET else {}
    return {**selector_labels(t.name), **leader}


def serving_selector(t: Target) -> str:
    """status.selector: one pod per replica, as the scale subresource counts them."""
    return _as_selector(serving_labels(t))


def _as_selector(pairs: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in pairs.items())


def labels(t: Target) -> dict[str, str]:
    out = {
        **selector_labels(t.name),
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "deepseek",
        "app.kubernetes.io/managed-by": MANAGER,
        "deepseek.ai/quantization": str(t.spec.quantization),
    }
    if t.spec.model.revision:
        out["deepseek.ai/revision"] = t.spec.model.revision
    return out


def object_meta(t: Target, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name or t.name, "namespace": t.namespace, "labels": labels(t), **extra}


def child(t: Target, kind: tuple[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    """A child object of ``kind`` ((apiVersion, kind)), named and labelled after ``t``."""
    return {"apiVersion": kind[0], "kind": kind[1], "metadata": object_meta(t), "spec": spec}


def config_map_name(name: str) -> str:
    return f"{name}-runtime"


def endpoint(name: str, namespace: str, spec: DeepSeekDeploymentSpec) -> str:
    scheme = "https" if spec.security.tls else "http"
    return f"{scheme}://{name}.{namespace}.svc:{spec.service.port}/v1"
