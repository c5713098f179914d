"""The CRD, generated from the pydantic models in api/ (``make crds`` writes crds/).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 subset: no $ref,
no anyOf for optionals, ``x-kubernetes-int-or-string`` for int|string, boolean
exclusiveMinimum. This module does that translation and adds what only a CRD has: printer
columns, the status and scale subresources, and CEL rules.
"""

from __future__ import annotations

from typing import Any

import yaml

from deepseek_operator import api

MAX_NAME_LENGTH = 52  # children add suffixes such as "-runtime"; Services allow 63
NAME_RULE = {
    "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": f"metadata.name must be a DNS-1035 label (lowercase letters, digits, '-', "
    f"starting with a letter) of at most {MAX_NAME_LENGTH} characters: it names the Service",
}
_DROP = {"title", "discriminator"}


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for a pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}  # the field's own description wins over the class's
        return _convert(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = node.pop("allOf")[0]
        return _convert({**inner, **node}, defs)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        types = {o.get("type") for o in options}
        if types == {"integer", "string"}:
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
            for key in ("description", "x-kubernetes-validations"):
                if key in node:
                    out[key] = node[key]
            if "default" in node and node["default"] is not None:
                out["default"] = node["default"]
            return out
        if len(options) != 1:
            raise ValueError(f"cannot express union {options} structurally")
        node = {**options[0], **node}
        if "default" in node and node["default"] is None:
            del node["default"]
        return _convert(node, defs)
    out = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _convert(v, defs) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs)
            elif value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key.replace("exclusive", "").lower()] = value
            out[key] = True
        elif key == "default" and isinstance(value, dict):
            out[key] = {}  # nested defaults are applied by the API server field by field
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("x-kubernetes-preserve-unknown-fields") and "properties" not in out:
        out.pop("additionalProperties", None)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def crd() -> dict[str, Any]:
    spec_schema = openapi_schema(api.DeepSeekDeploymentSpec)
    status_schema = openapi_schema(api.DeepSeekDeploymentStatus)
    status_schema.pop("required", None)
    status_schema["description"] = "What the operator decided and observed."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "deepseek-operator"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": api.SHORT_NAMES,
                "categories": ["all", "deepseek"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
                        {"name": "Quant", "type": "string", "jsonPath": ".spec.quantization"},
                        {
                            "name": "GPUs",
                            "type": "integer",
                            "jsonPath": ".status.gpus",
                            "description": "GPUs per pod",
                        },
                        {
                            "name": "Nodes",
                            "type": "integer",
                            "jsonPath": ".status.nodes",
                            "description": "Nodes per replica: one pod on each (more than 1: a "
                            "LeaderWorkerSet group)",
                        },
                        {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Endpoint",
                            "type": "string",
                            "jsonPath": ".status.endpoint",
                            "priority": 1,
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A private, GPU-sized deployment of a DeepSeek model: "
                            "the operator sizes GPUs from the model and its quantization and "
                            "reconciles the Deployment (or, for a model larger than one node, "
                            "the LeaderWorkerSet), Service, autoscaler and isolation.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [NAME_RULE],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "deepseek.ai/v1alpha1",
                                },
                                "kind": {"type": "string", "description": "DeepSeekDeployment"},
                                # The API server allows nothing else on metadata.
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def crd_yaml() -> str:
    header = (
        f"# Generated from operator/deepseek_operator/api/ by `make crds`; do not edit.\n"
        f"# {api.API_VERSION} {api.KIND}\n"
    )
    return header + yaml.dump(crd(), Dumper=_NoAliases, sort_keys=False, width=100)
