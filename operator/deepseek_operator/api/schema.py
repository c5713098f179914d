"""The base every API object shares: camelCase on the wire, unknown fields refused, and the
field patterns the CRD and pydantic both enforce."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
RELATIVE_PATH = r"^$|^[^/].*$"


class Schema(BaseModel):
    """Base: camelCase on the wire, unknown fields refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL cross-field rules (``x-kubernetes-validations``) the CRD carries for this object."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}
