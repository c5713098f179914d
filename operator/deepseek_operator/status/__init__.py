"""Observed children -> the DeepSeekDeployment's status. Pure: the reconcile layer reads the
children into an ``Observed`` snapshot and writes what ``status_of`` returns."""

from deepseek_operator.status.conditions import (
    AUTHENTICATED,
    GPU_PLANNED,
    READY,
    WEIGHTS_VERIFIED,
    condition,
    merge_conditions,
)
from deepseek_operator.status.observed import Observed
from deepseek_operator.status.readiness import from_deployment, weights_verified
from deepseek_operator.status.report import status_of

__all__ = [
    "AUTHENTICATED",
    "GPU_PLANNED",
    "READY",
    "WEIGHTS_VERIFIED",
    "Observed",
    "condition",
    "from_deployment",
    "merge_conditions",
    "status_of",
    "weights_verified",
]
