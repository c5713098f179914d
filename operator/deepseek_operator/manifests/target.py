"""The DeepSeekDeployment being built for, and what every child shares: names, labels, ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepseek_operator.api import DeepSeekDeploymentSpec
from deepseek_operator.sizing import GpuPlan

APP = "deepseek-runtime"
MANAGER = "deepseek-operator"
HTTP_PORT = 8080
TRITON_HTTP_PORT = 8000
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
RUNTIME_UID = 10001
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


def selector(name: str) -> str:
    """The pods' label selector as a string (status.selector, list calls)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


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


def config_map_name(name: str) -> str:
    return f"{name}-runtime"


def endpoint(name: str, namespace: str, spec: DeepSeekDeploymentSpec) -> str:
    scheme = "https" if spec.security.tls else "http"
    return f"{scheme}://{name}.{namespace}.svc:{spec.service.port}/v1"
