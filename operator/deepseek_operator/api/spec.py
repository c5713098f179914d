"""The DeepSeekDeployment resource: its names, its spec, and how a spec is validated."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from deepseek_operator.api.access import MonitoringSpec, SecuritySpec, ServiceSpec
from deepseek_operator.api.model import ModelFormat, ModelSpec, Quantization
from deepseek_operator.api.scheduling import SchedulingSpec
from deepseek_operator.api.schema import Rule, Schema, bounded
from deepseek_operator.api.serving import (
    AutoscalingMode,
    AutoscalingSpec,
    ResourcesSpec,
    RolloutSpec,
    RuntimeSpec,
)

GROUP = "deepseek.ai"
VERSION = "v1alpha1"
KIND = "DeepSeekDeployment"
PLURAL = "deepseekdeployments"
SINGULAR = "deepseekdeployment"
SHORT_NAMES = ["dsd"]
API_VERSION = f"{GROUP}/{VERSION}"


class DeepSeekDeploymentSpec(Schema):
    """A private, GPU-sized DeepSeek deployment."""

    rules = (
        Rule(
            "self.model.format != 'gguf' || self.quantization == 'none'",
            "quantization must be none for gguf models (GGUF carries its own)",
            lambda s: s.model.format != ModelFormat.gguf or s.quantization == Quantization.none,
        ),
    )

    model: ModelSpec = Field(description="The model and where its weights are.")
    quantization: Quantization = Field(
        Quantization.none,
        description="Weight precision: none "
        "(the checkpoint's own), bf16, fp16, fp8, int8, int4, awq "
        "or gptq.",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="Runtime settings.")
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="GPUs, CPU and memory per replica."
    )
    replicas: int = bounded(
        1,
        0,
        1000,
        "Replicas when autoscaling is off; `kubectl scale dsd/NAME` sets it. A "
        "replica of a model larger than one node is a group of pods, one per node.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        None, description="Scale on queue length. Absent: fixed replicas."
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec, description="How a spec change replaces the pods."
    )
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec, description="Where pods may run."
    )
    service: ServiceSpec = Field(
        default_factory=ServiceSpec, description="How the API is exposed in the cluster."
    )
    security: SecuritySpec = Field(
        default_factory=SecuritySpec, description="Keys, TLS and who may connect."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prometheus integration."
    )

    @property
    def autoscaling_mode(self) -> AutoscalingMode:
        return AutoscalingMode(self.autoscaling.mode) if self.autoscaling else AutoscalingMode.none


def parse_spec(spec: dict[str, Any]) -> DeepSeekDeploymentSpec:
    """Validate a CR's spec; raises pydantic.ValidationError naming the field."""
    return DeepSeekDeploymentSpec.model_validate(spec)


def error_fields(exc: Exception) -> list[str]:
    """``spec.a.b[0]: reason`` lines from a pydantic ValidationError, with field paths written as
    the API server writes them, so both say the same thing."""
    if not isinstance(exc, ValidationError):
        return [str(exc)]
    return [
        f"{field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    ]


def field_path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("function-"):
            path += f".{part}"
    return path
