"""spec + plan -> every child object, as plain dicts. Pure: no I/O, no Kubernetes client.

Each builder takes the resource's name, namespace and validated spec (plus the GPU plan where
it matters) and returns one object with ``metadata.name`` set. ``children()`` lists them all in
the order they should be applied. Owner references are added by the reconcile layer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from deepseek_operator.api import (
    AutoscalingMode,
    DeepSeekDeploymentSpec,
    ModelFormat,
)
from deepseek_operator.sizing import GpuPlan

APP = "deepseek-runtime"
MANAGER = "deepseek-operator"
HTTP_PORT = 8080
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
RUNTIME_UID = 10001
MODEL_MOUNT = "/models"
CONFIG_MOUNT = "/etc/deepseek"
KEYS_MOUNT = "/etc/deepseek/keys"
TLS_MOUNT = "/etc/deepseek/tls"
INTEGRITY_MOUNT = "/etc/deepseek/integrity"
QUEUE_METRIC = "deepseek_requests_waiting"
CONFIG_HASH_ANNOTATION = "deepseek.ai/config-hash"


@dataclass(frozen=True, slots=True)
class Target:
    """The DeepSeekDeployment being built for."""

    name: str
    namespace: str
    spec: DeepSeekDeploymentSpec
    plan: GpuPlan | None = None

    @property
    def gpus(self) -> int:
        if self.plan is not None:
            return self.plan.gpus
        count = self.spec.resources.gpu.count
        return int(count) if count != "auto" else 1

    @property
    def scheme(self) -> str:
        return "HTTPS" if self.spec.security.tls else "HTTP"


def selector_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": name}


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


def _meta(t: Target, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name or t.name, "namespace": t.namespace, "labels": labels(t), **extra}


def config_map_name(name: str) -> str:
    return f"{name}-runtime"


def endpoint(name: str, namespace: str, spec: DeepSeekDeploymentSpec) -> str:
    scheme = "https" if spec.security.tls else "http"
    return f"{scheme}://{name}.{namespace}.svc:{spec.service.port}/v1"


# --- runtime configuration -----------------------------------------------------------------


def model_path(spec: DeepSeekDeploymentSpec) -> str:
    source = spec.model.source
    if source.image is not None:
        return source.image.path
    if source.pvc is not None and source.pvc.path:
        return f"{MODEL_MOUNT}/{source.pvc.path.strip('/')}"
    return MODEL_MOUNT


def runtime_settings(t: Target) -> dict[str, Any]:
    """The runtime's ``--config`` file: keys of deepseek_runtime.config.ServerSettings."""
    spec = t.spec
    rt = spec.runtime
    settings: dict[str, Any] = {
        "model": model_path(spec),
        "served_model_name": spec.model.name,
        "quantization": str(spec.quantization),
        "max_num_seqs": rt.max_concurrent_sequences,
        "max_queue": rt.max_queue_length,
        "triton_max_batch_size": rt.max_batch_size or rt.max_concurrent_sequences,
        "triton_max_queue_delay_ms": rt.max_queue_delay_ms,
        "host": "0.0.0.0",
        "port": HTTP_PORT,
        "triton_http_port": TRITON_HTTP_PORT,
        "triton_grpc_port": TRITON_GRPC_PORT,
        "triton_metrics_port": TRITON_METRICS_PORT,
        "audit_log": "/var/log/deepseek/audit.jsonl",
    }
    if t.plan is not None:
        settings["max_model_len"] = t.plan.max_model_len
    elif rt.max_model_len:
        settings["max_model_len"] = rt.max_model_len
    if spec.model.format == ModelFormat.gguf:
        settings["gguf_file"] = spec.model.gguf_file
    if spec.security.api_keys:
        settings["api_keys"] = f"{KEYS_MOUNT}/api-keys.yaml"
    else:
        # No keys: the NetworkPolicy is the only gate, and the status says so.
        settings["allow_unauthenticated"] = True
    if spec.security.tls:
        settings["tls_cert"] = f"{TLS_MOUNT}/tls.crt"
        settings["tls_key"] = f"{TLS_MOUNT}/tls.key"
    return settings


def config_map(t: Target) -> dict[str, Any]:
    body = yaml.safe_dump(runtime_settings(t), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(t, config_map_name(t.name)),
        "data": {"runtime.yaml": body},
    }


def config_hash(t: Target) -> str:
    """Changes whenever anything that should roll the pods changes (the ConfigMap included)."""
    material = json.dumps(
        {"config": runtime_settings(t), "spec": t.spec.wire(), "gpus": t.gpus}, sort_keys=True
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


# --- the pods --------------------------------------------------------------------------------


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


def _volumes(t: Target) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
        "resources": {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [m for m in model_mounts if m["name"] in ("model", "tmp")]
        + [{"name": "integrity", "mountPath": INTEGRITY_MOUNT, "readOnly": True}],
    }
    return [volume], [init]


def _scheduling(t: Target) -> dict[str, Any]:
    gpu = t.spec.resources.gpu
    sched = t.spec.scheduling
    node_selector = dict(sched.node_selector)
    pod: dict[str, Any] = {}
    if t.plan is not None and t.plan.product:
        node_selector["nvidia.com/gpu.product"] = t.plan.product
    elif gpu.product:
        node_selector["nvidia.com/gpu.product"] = gpu.product
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [{"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}]
    tolerations += [tol.wire() for tol in sched.tolerations]
    pod["tolerations"] = tolerations
    affinity = dict(sched.affinity or {})
    if gpu.memory_gi_b and not gpu.product:
        # GPU feature discovery labels memory in MiB; require at least what was asked for.
        term = {
            "matchExpressions": [
                {
                    "key": "nvidia.com/gpu.memory",
                    "operator": "Gt",
                    "values": [str(int(gpu.memory_gi_b * 1024) - 1)],
                }
            ]
        }
        affinity.setdefault("nodeAffinity", {})[
            "requiredDuringSchedulingIgnoredDuringExecution"
        ] = {"nodeSelectorTerms": [term]}
    if affinity:
        pod["affinity"] = affinity
    if sched.priority_class_name:
        pod["priorityClassName"] = sched.priority_class_name
    return pod


def deployment(t: Target) -> dict[str, Any]:
    spec = t.spec
    gpu = spec.resources.gpu
    volumes, mounts = _volumes(t)
    integrity_volumes, init_containers = _integrity(t, mounts)
    gpu_quantity = str(t.gpus)
    container = {
        "name": "runtime",
        "image": spec.runtime.image,
        "imagePullPolicy": spec.runtime.image_pull_policy,
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
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "triton-http", "containerPort": TRITON_HTTP_PORT, "protocol": "TCP"},
            {"name": "triton-grpc", "containerPort": TRITON_GRPC_PORT, "protocol": "TCP"},
            {"name": "triton-metrics", "containerPort": TRITON_METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {
                "cpu": spec.resources.cpu,
                "memory": spec.resources.memory,
                gpu.resource_name: gpu_quantity,
            },
            "limits": {"memory": spec.resources.memory, gpu.resource_name: gpu_quantity},
        },
        # Loading a large model takes minutes: the startup probe holds liveness off for 30 min.
        "startupProbe": _probe(t, "/health", 10, 180),
        "livenessProbe": _probe(t, "/health", 10, 3),
        "readinessProbe": _probe(t, "/ready", 5, 3),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": t.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,  # SIGTERM drains in-flight requests
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes + integrity_volumes,
        **_scheduling(t),
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(t),
        "spec": {
            "selector": {"matchLabels": selector_labels(t.name)},
            # One pod at a time: a surge pod would need a second set of GPUs.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": labels(t),
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash(t),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HTTP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }
    if spec.autoscaling_mode == AutoscalingMode.none:
        # With an autoscaler the field is left out so that the HPA (or KEDA) owns it.
        body["spec"]["replicas"] = spec.replicas
    return body


# --- around the pods ---------------------------------------------------------------------------


def service_account(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(t),
        "automountServiceAccountToken": False,
    }


def service(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(t),
        "spec": {
            "type": t.spec.service.type,
            "selector": selector_labels(t.name),
            "ports": [
                {
                    "name": "http",
                    "port": t.spec.service.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": t.scheme.lower(),
                },
                {
                    "name": "triton-http",
                    "port": TRITON_HTTP_PORT,
                    "targetPort": "triton-http",
                    "protocol": "TCP",
                },
                {
                    "name": "triton-grpc",
                    "port": TRITON_GRPC_PORT,
                    "targetPort": "triton-grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
            ],
        },
    }


def pod_disruption_budget(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(t),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(t.name)}},
    }


def horizontal_pod_autoscaler(t: Target) -> dict[str, Any]:
    auto = t.spec.autoscaling
    assert auto is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(auto.target_queue_length),
                        },
                    },
                }
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": auto.scale_down_stabilization_seconds},
                "scaleUp": {"stabilizationWindowSeconds": 0},
            },
        },
    }


def scaled_object(t: Target) -> dict[str, Any]:
    auto = t.spec.autoscaling
    assert auto is not None
    query = f'sum({QUEUE_METRIC}{{namespace="{t.namespace}",service="{t.name}"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(t),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": t.name},
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": auto.prometheus_address,
                        "query": query,
                        "threshold": str(auto.target_queue_length),
                    },
                }
            ],
        },
    }


def service_monitor(t: Target) -> dict[str, Any]:
    endpoint_spec: dict[str, Any] = {
        "port": "http",
        "path": "/metrics",
        "interval": t.spec.monitoring.interval,
        "scheme": t.scheme.lower(),
    }
    if t.spec.security.tls:
        endpoint_spec["tlsConfig"] = {"serverName": f"{t.name}.{t.namespace}.svc"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(t),
        "spec": {
            "selector": {"matchLabels": selector_labels(t.name)},
            "endpoints": [endpoint_spec],
        },
    }


def network_policy(t: Target) -> dict[str, Any]:
    """Default deny: in from the listed peers only, out to DNS only."""
    security = t.spec.security
    api_ports = [
        {"protocol": "TCP", "port": p} for p in (HTTP_PORT, TRITON_HTTP_PORT, TRITON_GRPC_PORT)
    ]
    if security.allow_from:
        peers = [_peer(p.wire()) for p in security.allow_from]
    else:
        peers = [{"podSelector": {}}]  # the same namespace only
    monitoring = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": t.spec.monitoring.namespace}
        }
    }
    ingress = [
        {"from": peers, "ports": api_ports},
        {
            "from": [monitoring],
            "ports": [
                {"protocol": "TCP", "port": HTTP_PORT},
                {"protocol": "TCP", "port": TRITON_METRICS_PORT},
            ],
        },
    ]
    dns = {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    egress = [dns]
    if security.allow_egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in security.allow_egress_cidrs]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(t),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(t.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _peer(peer: dict[str, Any]) -> dict[str, Any]:
    return {k: {"matchLabels": v.get("matchLabels", {})} for k, v in peer.items()}


def children(t: Target) -> list[dict[str, Any]]:
    """Every child, in apply order: what pods reference comes before the pods."""
    out = [
        service_account(t),
        config_map(t),
        service(t),
        network_policy(t),
        pod_disruption_budget(t),
        deployment(t),
    ]
    mode = t.spec.autoscaling_mode
    if mode == AutoscalingMode.hpa:
        out.append(horizontal_pod_autoscaler(t))
    elif mode == AutoscalingMode.keda:
        out.append(scaled_object(t))
    if t.spec.monitoring.service_monitor:
        out.append(service_monitor(t))
    return out
