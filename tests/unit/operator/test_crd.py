from __future__ import annotations

from pathlib import Path
from typing import Any

from deepseek_operator.crd import crd, crd_yaml

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "deepseek.ai_deepseekdeployments.yaml"
CHART_CRD = ROOT / "charts" / "deepseek-operator" / "crds" / CRD_FILE.name


def walk(node: dict[str, Any], path: str = ""):  # type: ignore[no-untyped-def]
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")


def schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_generated_crd_is_committed_and_fresh() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), "crds/ is stale: run `make crds`"
    assert CHART_CRD.read_text() == crd_yaml(), "the chart's crds/ is stale: run `make crds`"


def test_schema_is_structural() -> None:
    for path, node in walk(schema()):
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "title", "$defs"):
            assert banned not in node, f"{path} has {banned}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_every_field_has_a_description() -> None:
    missing = [
        p
        for p, n in walk(schema())
        if p not in ("", ".metadata") and not p.endswith("[]") and "description" not in n
    ]
    assert not missing, missing


def test_names_subresources_and_columns() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["dsd"]
    assert spec["names"]["plural"] == "deepseekdeployments"
    version = spec["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    assert "status" in version["subresources"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ["Model", "Quant", "GPUs", "Ready", "Phase", "Age"]:
        assert wanted in columns
