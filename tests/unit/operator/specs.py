"""Spec fixtures shared by the operator's unit tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

VALID: dict[str, Any] = {
    "model": {
        "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "source": {"pvc": {"claimName": "models", "path": "r1-7b"}},
    },
    "quantization": "int8",
    "resources": {"gpu": {"count": "auto", "product": "NVIDIA-A100-SXM4-80GB"}},
    "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetQueueLength": 8},
}


def spec(**changes: Any) -> dict[str, Any]:
    """VALID with dotted-path changes applied: spec(**{"model.name": "x"})."""
    out = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is _DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return out


_DELETE = object()
DELETE = _DELETE


def cr(name: str = "r1", namespace: str = "ai", **changes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "deepseek.ai/v1alpha1",
        "kind": "DeepSeekDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1", "generation": 1},
        "spec": spec(**changes),
    }


@dataclass(frozen=True)
class Invalid:
    """A spec both the API server (schema and CEL) and pydantic must refuse, naming ``field``
    (as the API server writes paths) and, for a cross-field rule, saying ``rule`` (its message)."""

    id: str
    changes: dict[str, Any]
    field: str
    rule: str | None = None

    def spec(self) -> dict[str, Any]:
        return spec(**self.changes)


# tests/unit/operator/test_api.py sends every case through pydantic, tests/cluster/
# test_validation.py through the real API server and `deepseek-operator render` too.
INVALID: list[Invalid] = [
    Invalid("model-missing", {"model": DELETE}, "spec.model"),
    Invalid("model-name-empty", {"model.name": ""}, "spec.model.name"),
    Invalid("model-name-spaces", {"model.name": "has spaces"}, "spec.model.name"),
    Invalid("source-missing", {"model.source": DELETE}, "spec.model.source"),
    Invalid(
        "source-empty",
        {"model.source": {}},
        "spec.model.source",
        "exactly one of pvc, hostPath or image must be set",
    ),
    Invalid(
        "source-two-kinds",
        {"model.source": {"pvc": {"claimName": "m"}, "hostPath": {"path": "/m"}}},
        "spec.model.source",
        "exactly one of pvc, hostPath or image must be set",
    ),
    Invalid(
        "pvc-claim-name",
        {"model.source.pvc.claimName": "Bad_Name"},
        "spec.model.source.pvc.claimName",
    ),
    Invalid(
        "pvc-path-absolute", {"model.source.pvc.path": "/absolute"}, "spec.model.source.pvc.path"
    ),
    Invalid(
        "host-path-relative",
        {"model.source": {"hostPath": {"path": "relative"}}},
        "spec.model.source.hostPath.path",
    ),
    Invalid("format-unknown", {"model.format": "onnx"}, "spec.model.format"),
    Invalid(
        "gguf-without-file",
        {"model.format": "gguf", "quantization": "none"},
        "spec.model",
        "ggufFile is required when format is gguf",
    ),
    Invalid("gguf-file-in-a-folder", {"model.ggufFile": "dir/x.gguf"}, "spec.model.ggufFile"),
    Invalid("gguf-file-extension", {"model.ggufFile": "weights.bin"}, "spec.model.ggufFile"),
    Invalid(
        "integrity-empty",
        {"model.integrity": {}},
        "spec.model.integrity",
        "set exactly one of configMap or secret",
    ),
    Invalid(
        "integrity-both",
        {"model.integrity": {"configMap": {"name": "a"}, "secret": {"name": "b"}}},
        "spec.model.integrity",
        "set exactly one of configMap or secret",
    ),
    Invalid("quantization-unknown", {"quantization": "int3"}, "spec.quantization"),
    Invalid(
        "gguf-quantized",
        {"model.format": "gguf", "model.ggufFile": "m.gguf", "quantization": "int8"},
        "spec",
        "quantization must be none for gguf models (GGUF carries its own)",
    ),
    Invalid("batch-zero", {"runtime": {"maxBatchSize": 0}}, "spec.runtime.maxBatchSize"),
    Invalid(
        "batch-above-concurrency",
        {"runtime": {"maxBatchSize": 64, "maxConcurrentSequences": 8}},
        "spec.runtime",
        "maxBatchSize must not exceed maxConcurrentSequences",
    ),
    Invalid("context-too-short", {"runtime": {"maxModelLen": 10}}, "spec.runtime.maxModelLen"),
    Invalid("queue-zero", {"runtime": {"maxQueueLength": 0}}, "spec.runtime.maxQueueLength"),
    Invalid(
        "pull-policy", {"runtime": {"imagePullPolicy": "Sometimes"}}, "spec.runtime.imagePullPolicy"
    ),
    Invalid(
        "gpu-count-zero",
        {"resources.gpu.count": 0},
        "spec.resources.gpu",
        "count must be 'auto' or a positive integer",
    ),
    # pydantic refuses the word by type, the API server by the count rule: both name the GPU.
    Invalid("gpu-count-word", {"resources.gpu.count": "many"}, "spec.resources.gpu"),
    Invalid(
        "gpu-product-and-memory",
        {"resources.gpu.memoryGiB": 80},
        "spec.resources.gpu",
        "set product or memoryGiB, not both",
    ),
    Invalid(
        "gpu-resource-name",
        {"resources.gpu.resourceName": "gpu"},
        "spec.resources.gpu.resourceName",
    ),
    Invalid("cpu-quantity", {"resources.cpu": "lots"}, "spec.resources.cpu"),
    Invalid("memory-quantity", {"resources.memory": "32 GB"}, "spec.resources.memory"),
    Invalid("replicas-negative", {"replicas": -1}, "spec.replicas"),
    Invalid(
        "autoscaling-bounds",
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling",
        "minReplicas must not exceed maxReplicas",
    ),
    Invalid("autoscaling-mode", {"autoscaling": {"mode": "vpa"}}, "spec.autoscaling.mode"),
    Invalid(
        "autoscaling-target",
        {"autoscaling": {"targetQueueLength": 0}},
        "spec.autoscaling.targetQueueLength",
    ),
    Invalid(
        "rollout-frozen",
        {"rollout": {"maxSurge": 0, "maxUnavailable": 0}},
        "spec.rollout",
        "maxSurge and maxUnavailable must not both be 0 (the rollout could never move)",
    ),
    Invalid("rollout-surge-negative", {"rollout": {"maxSurge": -1}}, "spec.rollout.maxSurge"),
    Invalid("service-type", {"service": {"type": "ExternalName"}}, "spec.service.type"),
    Invalid("service-port", {"service": {"port": 70000}}, "spec.service.port"),
    Invalid(
        "allow-from-empty-peer",
        {"security": {"allowFrom": [{}]}},
        "spec.security.allowFrom[0]",
        "set namespaceSelector, podSelector or both",
    ),
    Invalid(
        "tls-secret-name",
        {"security": {"tls": {"secretName": "UPPER"}}},
        "spec.security.tls.secretName",
    ),
    Invalid("scrape-interval", {"monitoring": {"interval": "often"}}, "spec.monitoring.interval"),
    Invalid(
        "toleration-operator",
        {"scheduling": {"tolerations": [{"operator": "Maybe"}]}},
        "spec.scheduling.tolerations[0].operator",
    ),
    Invalid("unknown-field", {"unknownField": 1}, "spec.unknownField"),
]

# Valid to the schema, but only the operator can tell they cannot be served.
UNSERVABLE: list[tuple[dict[str, Any], str]] = [
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "bf16",
            "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3", "maxNodes": 1},
        },
        "spec.resources.gpu",
    ),
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "bf16",
            "resources.gpu": {"product": "NVIDIA-L4"},
        },
        "spec.resources.gpu",
    ),
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "fp8",
            "resources.gpu": {"count": 128, "product": "NVIDIA-H100-80GB-HBM3"},
        },
        "spec.resources.gpu.count",
    ),
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "fp8",
            "resources.gpu": {"count": 16, "maxPerNode": 6, "product": "NVIDIA-H100-80GB-HBM3"},
        },
        "spec.resources.gpu.count",
    ),
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "none",
            "resources.gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
        },
        "spec.quantization",
    ),
    ({"resources.gpu": {"product": "NVIDIA-Imaginary-9000"}}, "spec.resources.gpu.product"),
    (
        {"resources.gpu": {"count": 3, "product": "NVIDIA-H100-80GB-HBM3"}},
        "spec.resources.gpu.count",
    ),
    (
        {"model.name": "acme/unknown-model", "resources.gpu": {"count": "auto"}},
        "spec.resources.gpu.count",
    ),
    ({"runtime": {"maxModelLen": 1_000_000}}, "spec.runtime.maxModelLen"),
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
            "quantization": "bf16",
            "resources.gpu": {"count": 1, "product": "NVIDIA-L4"},
        },
        "spec.resources.gpu",
    ),
]
