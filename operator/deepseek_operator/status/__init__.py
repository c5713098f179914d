"""Observed children -> the DeepSeekDeployment's status. Pure: the reconcile layer reads the
children into an ``Observed`` snapshot and writes what ``status_of`` returns."""

from deepseek_operator.status.alerts import alerts
from deepseek_operator.status.conditions import (
    AUTHENTICATED,
    AUTOSCALING,
    GPU_PLANNED,
    MONITORING,
    READY,
    WEIGHTS_VERIFIED,
    condition,
    merge_conditions,
)
from deepseek_operator.status.observed import Observed
from deepseek_operator.status.optional import unserved_message
from deepseek_operator.status.pods import needs_events
from deepseek_operator.status.readiness import NOT_SERVED, from_workload, weights_verified
from deepseek_operator.status.report import status_of

__all__ = [
    "AUTHENTICATED",
    "AUTOSCALING",
    "GPU_PLANNED",
    "MONITORING",
    "NOT_SERVED",
    "READY",
    "WEIGHTS_VERIFIED",
    "Observed",
    "alerts",
    "condition",
    "from_workload",
    "merge_conditions",
    "needs_events",
    "status_of",
    "unserved_message",
    "weights_verified",
]
