"""The DeepSeekDeployment API: pydantic models of spec and status, the single source of truth.

The CRD (crd.py) is generated from these models, so every ``description`` here is what
``kubectl explain dsd.spec...`` prints. Field constraints (patterns, bounds, enums) become the
schema's; each cross-field ``Rule`` is declared once on its object and becomes both a CEL rule
the API server checks and a pydantic check (schema.py). Field names are camelCase on the wire.
"""

from deepseek_operator.api.access import MonitoringSpec, Peer, SecuritySpec, ServiceSpec
from deepseek_operator.api.model import ModelFormat, ModelSource, ModelSpec, Quantization
from deepseek_operator.api.scheduling import SchedulingSpec
from deepseek_operator.api.schema import Schema
from deepseek_operator.api.serving import (
    DEFAULT_MAX_NODES,
    AutoscalingMode,
    AutoscalingSpec,
    GpuSpec,
    ResourcesSpec,
    RolloutSpec,
    RuntimeSpec,
)
from deepseek_operator.api.spec import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    DeepSeekDeploymentSpec,
    error_fields,
    parse_spec,
)
from deepseek_operator.api.status import Condition, DeepSeekDeploymentStatus, GpuPlanStatus

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_NODES",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "AutoscalingMode",
    "AutoscalingSpec",
    "Condition",
    "DeepSeekDeploymentSpec",
    "DeepSeekDeploymentStatus",
    "GpuPlanStatus",
    "GpuSpec",
    "ModelFormat",
    "ModelSource",
    "ModelSpec",
    "MonitoringSpec",
    "Peer",
    "Quantization",
    "ResourcesSpec",
    "RolloutSpec",
    "RuntimeSpec",
    "SchedulingSpec",
    "Schema",
    "SecuritySpec",
    "ServiceSpec",
    "error_fields",
    "parse_spec",
]
