"""The runtime's configuration file (a ConfigMap) and the hash that rolls pods when it changes.

Every pod of a replica reads the same file. Beyond one GPU it says how the model is split:
``tensor_parallel_size`` is the number of ranks of the replica, one per GPU, every pod's
(absent means 1). Within one pod the runtime starts them all. A replica of several nodes (a
LeaderWorkerSet group, ``tensor_parallel_size / LWS_GROUP_SIZE`` ranks per pod) also gets
``rendezvous_port``: where rank 0, on the leader, listens for the others. Each pod learns its
place from the environment the LWS controller injects: ``LWS_LEADER_ADDRESS`` (the leader's
DNS name), ``LWS_GROUP_SIZE`` (pods in the group) and ``LWS_WORKER_INDEX`` (0 on the leader,
which serves; a worker only runs its ranks, global rank = LWS_WORKER_INDEX x ranks per pod +
local rank). The API keys and the TLS certificate are mounted on the leader only: a worker
must not open ``api_keys``, ``tls_cert`` or ``tls_key``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from deepseek_operator.api import DeepSeekDeploymentSpec, ModelFormat
from deepseek_operator.manifests.target import (
    HTTP_PORT,
    METRICS_PORT,
    RENDEZVOUS_PORT,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    Target,
    config_map_name,
    object_meta,
)

MODEL_MOUNT = "/models"
CONFIG_MOUNT = "/etc/deepseek"
KEYS_MOUNT = "/etc/deepseek/keys"
TLS_MOUNT = "/etc/deepseek/tls"
INTEGRITY_MOUNT = "/etc/deepseek/integrity"


def model_path(spec: DeepSeekDeploymentSpec) -> str:
    source = spec.model.source
    if source.image is not None:
        return source.image.path
    if source.pvc is not None and source.pvc.path:
        return f"{MODEL_MOUNT}/{source.pvc.path.strip('/')}"
    return MODEL_MOUNT


def runtime_settings(t: Target) -> dict[str, Any]:
    """The runtime's ``--config`` file: keys of deepseek_runtime.settings.ServerSettings."""
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
        "metrics_port": METRICS_PORT,
        "triton_http_port": TRITON_HTTP_PORT,
        "triton_grpc_port": TRITON_GRPC_PORT,
        "triton_metrics_port": TRITON_METRICS_PORT,
        "audit_log": "/var/log/deepseek/audit.jsonl",
    }
    if t.tensor_parallel > 1:
        settings["tensor_parallel_size"] = t.tensor_parallel
    if t.nodes > 1:
        settings["rendezvous_port"] = RENDEZVOUS_PORT
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


def runtime_yaml(t: Target) -> str:
    return yaml.safe_dump(runtime_settings(t), sort_keys=True)


def config_map(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(t, config_map_name(t.name)),
        "data": {"runtime.yaml": runtime_yaml(t)},
    }


def config_hash(t: Target) -> str:
    """A hash of the runtime's configuration file, for the pod template's annotation.

    A running pod does not reread its mounted ConfigMap, so a new configuration must change the
    template to roll the pods. Nothing else goes in: whatever else the pods depend on is in the
    template itself, and replicas, autoscaling, the Service or monitoring must never replace
    pods (each replacement reloads a model onto its GPUs)."""
    return hashlib.sha256(runtime_yaml(t).encode()).hexdigest()[:16]
