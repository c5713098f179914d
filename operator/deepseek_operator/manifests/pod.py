"""The runtime pods: their template and the ServiceAccount they run as.

A pod either serves (a Deployment's pod, or a LeaderWorkerSet group's leader: rank 0, both front
doors, the probes) or is a group's worker (its other ranks: no ports, no probes, no keys).
"""

from __future__ import annotations

from typing import Any, Literal

from deepseek_operator.manifests.runtime_config import (
    CONFIG_MOUNT,
    INTEGRITY_MOUNT,
    KEYS_MOUNT,
    MODEL_MOUNT,
    TLS_MOUNT,
    config_hash,
    model_path,
)
from deepseek_operator.manifests.scheduling import placement
from deepseek_operator.manifests.target import (
    CONFIG_HASH_ANNOTATION,
    HTTP_PORT,
    METRICS_PORT,
    RENDEZVOUS_PORT,
    RUNTIME_UID,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    Target,
    config_map_name,
    labels,
    object_meta,
)

Role = Literal["server", "worker"]

# A deleted pod leaves the Service's endpoints at once, but kube-proxy (and any load balancer)
# takes a moment to stop sending it new connections: the server keeps serving normally this
# long before it gets SIGTERM and drains, so a rollout drops no request.
ENDPOINTS_GRACE_S = 10
# The kubelet's whole budget from deletion to SIGKILL: the wait above, then the runtime's drain
# (its drain_timeout_s plus shutdown margin; tests/unit/contract checks they fit).
TERMINATION_GRACE_S = 60


def _container_security() -> dict[str, Any]:
    # The `restricted` Pod Security Standard, and a read-only root file system on top.
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(t: Target, path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": t.scheme},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _volumes(t: Target, role: Role) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spec = t.spec
    shm_gib = max(1, min(16, t.gpus * 2))
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(t.name)}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
        {"name": "logs", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_MOUNT + "/config", "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "logs", "mountPath": "/var/log/deepseek"},
    ]
    source = spec.model.source
    if source.pvc is not None:
        volumes.append(
            {
                "name": "model",
                "persistentVolumeClaim": {"claimName": source.pvc.claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
    elif source.host_path is not None:
        volumes.append(
            {"name": "model", "hostPath": {"path": source.host_path.path, "type": "Directory"}}
        )
        mounts.append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
    if role == "worker":
        return volumes, mounts  # the keys and the certificate stay with the pod that serves
    if spec.security.api_keys:
        volumes.append(
            {
                "name": "api-keys",
                "secret": {"secretName": spec.security.api_keys.secret_name, "defaultMode": 0o440},
            }
        )
        mounts.append({"name": "api-keys", "mountPath": KEYS_MOUNT, "readOnly": True})
    if spec.security.tls:
        volumes.append(
            {
                "name": "tls",
                "secret": {"secretName": spec.security.tls.secret_name, "defaultMode": 0o440},
            }
        )
        mounts.append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
    return volumes, mounts


def _integrity(
    t: Target, model_mounts: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An init container that checks every weight file against the pinned manifest."""
    integrity = t.spec.model.integrity
    if integrity is None:
        return [], []
    ref = integrity.config_map or integrity.secret
    assert ref is not None
    if integrity.config_map is not None:
        volume = {"name": "integrity", "configMap": {"name": ref.name}}
    else:
        volume = {"name": "integrity", "secret": {"secretName": ref.name, "defaultMode": 0o440}}
    init = {
        "name": "verify-weights",
        "image": t.spec.runtime.image,
        "imagePullPolicy": t.spec.runtime.image_pull_policy,
        "command": [
            "deepseek-runtime",
            "verify-manifest",
            f"{INTEGRITY_MOUNT}/{ref.key}",
            model_path(t.spec),
        ],
        # The verifier writes the first bad file here; the operator copies it to the
        # WeightsVerified condition.
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _container_security(),
        # The runtime's own CPU request: an init container asking for more would raise what the
        # whole pod needs from the scheduler (a small node then cannot place it at all).
        "resources": {
            "requests": {"cpu": t.spec.resources.cpu, "memory": "512Mi"},
            "limits": {"memory": "512Mi"},
        },
        "volumeMounts": [m for m in model_mounts if m["name"] in ("model", "tmp")]
        + [{"name": "integrity", "mountPath": INTEGRITY_MOUNT, "readOnly": True}],
    }
    return [volume], [init]


def _ports(t: Target) -> list[dict[str, Any]]:
    ports = [
        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        {"name": "triton-http", "containerPort": TRITON_HTTP_PORT, "protocol": "TCP"},
        {"name": "triton-grpc", "containerPort": TRITON_GRPC_PORT, "protocol": "TCP"},
        {"name": "triton-metrics", "containerPort": TRITON_METRICS_PORT, "protocol": "TCP"},
    ]
    if t.nodes > 1:
        ports.append({"name": "rendezvous", "containerPort": RENDEZVOUS_PORT, "protocol": "TCP"})
    return ports


def _runtime_container(t: Target, role: Role, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    spec = t.spec
    gpu = spec.resources.gpu
    gpu_quantity = str(t.gpus)
    container: dict[str, Any] = {
        "name": "runtime",
        "image": spec.runtime.image,
        "imagePullPolicy": spec.runtime.image_pull_policy,
        # The same command on every pod of a group: the runtime tells its role from the
        # environment the LWS controller injects (LWS_WORKER_INDEX and the rest).
        "args": [
            "serve",
            "--config",
            f"{CONFIG_MOUNT}/config/runtime.yaml",
            *spec.runtime.extra_args,
        ],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        ],
        "resources": {
            "requests": {
                "cpu": spec.resources.cpu,
                "memory": spec.resources.memory,
                gpu.resource_name: gpu_quantity,
            },
            "limits": {"memory": spec.resources.memory, gpu.resource_name: gpu_quantity},
        },
        "securityContext": _container_security(),
        "volumeMounts": mounts,
        # A runtime that dies at start-up (a bad model path, out of memory) says why in its
        # last log lines; the kubelet copies them into the status the operator reports.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if role == "server":
        container["ports"] = _ports(t)
        # Loading a large model takes minutes: the startup probe holds liveness off for 30 min.
        container["startupProbe"] = _probe(t, "/health", 10, 180)
        container["livenessProbe"] = _probe(t, "/health", 10, 3)
        container["readinessProbe"] = _probe(t, "/ready", 5, 3)
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": ENDPOINTS_GRACE_S}}}
    return container


ENGINE_TYPE_LABEL = "inference.networking.k8s.io/engine-type"


def pod_template(t: Target, role: Role = "server") -> dict[str, Any]:
    volumes, mounts = _volumes(t, role)
    integrity_volumes, init_containers = _integrity(t, mounts)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": t.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_runtime_container(t, role, mounts)],
        "volumes": volumes + integrity_volumes,
        **placement(t),
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    annotations = {CONFIG_HASH_ANNOTATION: config_hash(t)}
    if role == "server":
        # The metrics port, not the API's: what the NetworkPolicy opens to the monitoring
        # namespace (TLS, when on, covers it too).
        annotations |= {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(METRICS_PORT),
            "prometheus.io/path": "/metrics",
            "prometheus.io/scheme": t.scheme.lower(),
        }
    pod_labels = labels(t)
    if role == "server":
        # The runtime exports the model-server gauges under vLLM's names, so the Gateway API
        # Inference Extension's endpoint picker reads our pods with its built-in vLLM mapping.
        pod_labels |= {ENGINE_TYPE_LABEL: "vllm"}
    return {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod_spec}


def service_account(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(t),
        "automountServiceAccountToken": False,
    }
