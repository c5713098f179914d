"""Spec fixtures shared by the operator's unit tests."""

from __future__ import annotations

import copy
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


# (changes, the field the error must name). Every one is refused by the pydantic models; the
# ones the CRD schema or a CEL rule can catch are refused by the API server too (tests/cluster).
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"model": DELETE}, "spec.model"),
    ({"model.name": ""}, "spec.model.name"),
    ({"model.name": "has spaces"}, "spec.model.name"),
    ({"model.source": {}}, "spec.model.source"),
    (
        {"model.source": {"pvc": {"claimName": "m"}, "hostPath": {"path": "/m"}}},
        "spec.model.source",
    ),
    ({"model.source.pvc.claimName": "Bad_Name"}, "spec.model.source.pvc.claimName"),
    ({"model.source.pvc.path": "/absolute"}, "spec.model.source.pvc.path"),
    ({"model.source": {"hostPath": {"path": "relative"}}}, "spec.model.source.hostPath.path"),
    ({"model.format": "onnx"}, "spec.model.format"),
    ({"model.format": "gguf"}, "spec.model"),
    ({"model.ggufFile": "dir/x.gguf"}, "spec.model.ggufFile"),
    ({"model.integrity": {}}, "spec.model.integrity"),
    (
        {"model.integrity": {"configMap": {"name": "a"}, "secret": {"name": "b"}}},
        "spec.model.integrity",
    ),
    ({"quantization": "int3"}, "spec.quantization"),
    ({"model.format": "gguf", "model.ggufFile": "m.gguf", "quantization": "int8"}, "spec"),
    ({"runtime": {"maxBatchSize": 0}}, "spec.runtime.maxBatchSize"),
    ({"runtime": {"maxBatchSize": 64, "maxConcurrentSequences": 8}}, "spec.runtime"),
    ({"runtime": {"maxModelLen": 10}}, "spec.runtime.maxModelLen"),
    ({"runtime": {"maxQueueLength": 0}}, "spec.runtime.maxQueueLength"),
    ({"runtime": {"imagePullPolicy": "Sometimes"}}, "spec.runtime.imagePullPolicy"),
    ({"resources.gpu.count": 0}, "spec.resources.gpu"),
    ({"resources.gpu.count": "many"}, "spec.resources.gpu.count"),
    ({"resources.gpu.memoryGiB": 80}, "spec.resources.gpu"),
    ({"resources.gpu.resourceName": "gpu"}, "spec.resources.gpu.resourceName"),
    ({"resources.cpu": "lots"}, "spec.resources.cpu"),
    ({"resources.memory": "32 GB"}, "spec.resources.memory"),
    ({"replicas": -1}, "spec.replicas"),
    ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling"),
    ({"autoscaling": {"mode": "vpa"}}, "spec.autoscaling.mode"),
    ({"autoscaling": {"targetQueueLength": 0}}, "spec.autoscaling.targetQueueLength"),
    ({"service": {"type": "ExternalName"}}, "spec.service.type"),
    ({"service": {"port": 70000}}, "spec.service.port"),
    ({"security": {"allowFrom": [{}]}}, "spec.security.allowFrom.0"),
    ({"security": {"tls": {"secretName": "UPPER"}}}, "spec.security.tls.secretName"),
    ({"monitoring": {"interval": "often"}}, "spec.monitoring.interval"),
    (
        {"scheduling": {"tolerations": [{"operator": "Maybe"}]}},
        "spec.scheduling.tolerations.0.operator",
    ),
    ({"unknownField": 1}, "spec.unknownField"),
]

# Valid to the schema, but only the operator can tell they cannot be served.
UNSERVABLE: list[tuple[dict[str, Any], str]] = [
    (
        {
            "model.name": "deepseek-ai/DeepSeek-R1",
            "quantization": "bf16",
            "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
        },
        "spec.resources.gpu",
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
