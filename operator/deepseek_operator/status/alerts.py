"""Which conditions are worth an Event: a problem that is new, or now says something new, so
that `kubectl get events` and `kubectl describe dsd` tell it once, not on every refresh."""

from __future__ import annotations

from typing import Any

from deepseek_operator.status.conditions import (
    AUTOSCALING,
    GPU_PLANNED,
    MONITORING,
    READY,
    WEIGHTS_VERIFIED,
)
from deepseek_operator.status.pods import REASONS
from deepseek_operator.status.readiness import NOT_SERVED


def alerts(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason, message) of each alarming condition in ``new`` that ``old`` did not say."""
    said = {c.get("type"): (c.get("reason"), c.get("message")) for c in old or []}
    return [
        (c["reason"], c["message"])
        for c in new
        if _alarming(c) and said.get(c["type"]) != (c["reason"], c["message"])
    ]


def _alarming(cond: dict[str, Any]) -> bool:
    if cond["type"] == READY:
        return cond["reason"] in REASONS or cond["reason"] in ("SpecInvalid", NOT_SERVED)
    if cond["type"] == GPU_PLANNED:
        return bool(cond["reason"] == "AssumedGpu")
    return cond["type"] in (WEIGHTS_VERIFIED, AUTOSCALING, MONITORING) and cond["status"] == "False"
