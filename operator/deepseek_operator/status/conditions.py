"""metav1.Conditions: build one, and merge new ones into the old list.

``lastTransitionTime`` moves only when ``status`` flips, so watching tools see real
transitions, not every refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

READY = "Ready"
GPU_PLANNED = "GpuPlanned"
WEIGHTS_VERIFIED = "WeightsVerified"
AUTHENTICATED = "Authenticated"
AUTOSCALING = "Autoscaling"
MONITORING = "Monitoring"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, status: bool | None, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    value = "Unknown" if status is None else ("True" if status else "False")
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:32000],
        "observedGeneration": generation,
    }


def merge_conditions(
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    timestamp: str | None = None,
    keep_others: bool = True,
) -> list[dict[str, Any]]:
    """New conditions replace old ones of the same type; other old types stay if keep_others."""
    stamp = timestamp or now()
    previous = {c.get("type"): c for c in old or []}
    merged = {c["type"]: c for c in old or []} if keep_others else {}
    for cond in new:
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        when = before.get("lastTransitionTime") if same and before else None
        merged[cond["type"]] = {**cond, "lastTransitionTime": when or stamp}
    return [merged[k] for k in sorted(merged, key=_order)]


def _order(type_: str) -> tuple[int, str]:
    rank = {
        READY: 0,
        GPU_PLANNED: 1,
        WEIGHTS_VERIFIED: 2,
        AUTHENTICATED: 3,
        AUTOSCALING: 4,
        MONITORING: 5,
    }
    return rank.get(type_, 9), type_
