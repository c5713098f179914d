"""Where the pods may run: node labels, tolerations, affinity, priority."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from deepseek_operator.api.schema import DNS_SUBDOMAIN, Schema, matching


class Toleration(Schema):
    key: str | None = Field(None, description="Taint key.", max_length=316)
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute taints.")


class SchedulingSpec(Schema):
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Extra node labels to require.", max_length=32
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Extra tolerations (nvidia.com/gpu is always tolerated).",
        max_length=32,
    )
    affinity: dict[str, Any] | None = Field(
        None,
        description="Pod affinity, as in a PodSpec.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: str | None = matching(
        None, DNS_SUBDOMAIN, 253, "PriorityClass for the pods."
    )
