"""The base every API object shares: camelCase on the wire, unknown fields refused, the field
patterns, and the cross-field rules that both the API server and pydantic enforce.

A ``Rule`` is stated once, on the object it is about: its CEL expression goes into the CRD's
``x-kubernetes-validations`` (the API server refuses at ``kubectl apply``), its predicate runs
in pydantic (``deepseek-operator render``, the operator itself), and both say its message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
RELATIVE_PATH = r"^$|^[^/].*$"


def bounded(default: Any, low: float, high: float, description: str) -> Any:
    """A number between ``low`` and ``high`` inclusive (the CRD's minimum and maximum)."""
    return Field(default, ge=low, le=high, description=description)


def matching(default: Any, pattern: str, max_length: int, description: str) -> Any:
    """A string that must match ``pattern`` and fit in ``max_length`` characters."""
    return Field(default, pattern=pattern, max_length=max_length, description=description)


@dataclass(frozen=True, slots=True)
class Rule:
    """One cross-field rule: ``cel`` for the API server, ``holds`` for pydantic, one message."""

    cel: str
    message: str
    holds: Callable[[Any], bool]


class Schema(BaseModel):
    """Base: camelCase on the wire, unknown fields refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @model_validator(mode="after")
    def _rules_hold(self) -> Schema:
        broken = [rule.message for rule in self.rules if not rule.holds(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [
                {"rule": rule.cel, "message": rule.message} for rule in cls.rules
            ]
        return schema


def rule_table(root: type[Schema] = Schema) -> Iterator[tuple[type[Schema], Rule]]:
    """Every (object, rule) pair declared on ``root`` and the classes derived from it."""
    for rule in root.__dict__.get("rules", ()):
        yield root, rule
    for sub in root.__subclasses__():
        yield from rule_table(sub)
