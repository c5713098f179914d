"""Bad input gets a clear error and loses nothing.

What the schema and CEL can judge, the API server refuses at `kubectl create`, naming the field.
What only sizing can judge (a model that does not fit its GPUs) is admitted, and the operator
answers with Ready=False/SpecInvalid naming the field, leaving running children untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import (
    CHILDREN_WITHOUT_HPA,
    Kubectl,
    OperatorProcess,
    apply_ready,
    condition,
    dsd,
    make_namespace,
    release_namespace,
    wait_children,
    wait_until,
)

from deepseek_operator.cli import EXIT_INVALID
from deepseek_operator.cli import main as render

# The operator's unit cases, shared: tests/ is on sys.path (tests/conftest.py).
from unit.operator.specs import INVALID, Invalid

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def validation_namespace(kubectl: Kubectl, crd: dict[str, object]) -> Iterator[str]:
    name = make_namespace(kubectl, "t-validation")
    yield name
    release_namespace(kubectl, name)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_api_server_and_pydantic_refuse_alike(
    kubectl: Kubectl,
    validation_namespace: str,
    case: Invalid,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every invalid case, refused by the real API server (schema, CEL) and by pydantic (the
    operator's own check, through `deepseek-operator render`), both naming the field and, for a
    cross-field rule, both saying the rule's message."""
    body = {
        "apiVersion": "deepseek.ai/v1alpha1",
        "kind": "DeepSeekDeployment",
        "metadata": {"name": f"bad-{case.id}"[:52], "namespace": validation_namespace},
        "spec": case.spec(),
    }
    # kubectl asks for strict field validation, so even an unknown field is an error.
    server = kubectl("create", "--dry-run=server", "-f", "-", input=_yaml(body), check=False)
    assert server.returncode != 0, f"the API server admitted {case.id}"
    assert f"{case.field}:" in server.stderr or f'"{case.field}"' in server.stderr, server.stderr

    cr_file = tmp_path / "cr.yaml"
    cr_file.write_text(_yaml(body))
    capsys.readouterr()
    assert render(["render", "-f", str(cr_file)]) == EXIT_INVALID, f"pydantic admitted {case.id}"
    errors = capsys.readouterr().err
    assert f"error: {case.field}" in errors, errors

    if case.rule is not None:
        assert case.rule in server.stderr, server.stderr
        assert f"error: {case.field}: {case.rule}" in errors, errors


def test_api_server_refuses_bad_names(kubectl: Kubectl, validation_namespace: str) -> None:
    ns = kubectl.ns(validation_namespace)
    result = ns("create", "-f", "-", input=_yaml(dsd("x" * 60)), check=False)
    assert result.returncode != 0 and "metadata.name" in result.stderr, result.stderr


UNFIT = {
    "model": {"name": "deepseek-ai/DeepSeek-R1"},
    "quantization": "bf16",
    "resources": {"gpu": {"count": 1, "product": "NVIDIA-L4"}},
}


def spec_invalid(ns: Kubectl, name: str) -> dict[str, Any] | None:
    cr = ns.get("dsd", name)
    ready = condition(cr, "Ready") if cr else None
    fresh = cr and ready and ready.get("observedGeneration") in (None, cr["metadata"]["generation"])
    if ready and fresh and ready["status"] == "False" and ready["reason"] == "SpecInvalid":
        return ready
    return None


def test_unfit_model_is_reported_without_children(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    ns.apply(dsd("unfit", UNFIT))
    ready = wait_until(lambda: spec_invalid(ns, "unfit"), 60, "Ready=False/SpecInvalid")
    assert "spec.resources.gpu" in ready["message"] or "spec.quantization" in ready["message"]
    assert ns.get("deployment", "unfit") is None


def snapshot(ns: Kubectl, name: str) -> dict[str, Any]:
    """What the operator would change: identity, generation and the desired state of every
    child (status written by controllers is not the operator's and is left out)."""
    out = {}
    for kind, child_name in CHILDREN_WITHOUT_HPA.items():
        child = ns.get(kind, child_name(name))
        assert child is not None, kind
        meta = child["metadata"]
        out[kind] = {
            "uid": meta["uid"],
            "generation": meta.get("generation"),
            "labels": meta.get("labels"),
            "annotations": {k: v for k, v in (meta.get("annotations") or {}).items()},
            "body": child.get("spec") or child.get("data"),
        }
        if kind in (
            "configmaps",
            "services",
            "serviceaccounts",
            "networkpolicies.networking.k8s.io",
        ):
            out[kind]["resourceVersion"] = meta["resourceVersion"]  # no controller writes these
    return out


def test_invalid_update_leaves_children_untouched(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "steady")
    wait_children(ns, "steady", CHILDREN_WITHOUT_HPA)
    before = snapshot(ns, "steady")

    ns.apply(dsd("steady", UNFIT))
    ready = wait_until(lambda: spec_invalid(ns, "steady"), 60, "Ready=False/SpecInvalid")
    assert "spec." in ready["message"], ready
    time.sleep(3)  # let any stray write land before comparing
    assert snapshot(ns, "steady") == before

    # Fixing the spec resumes normal service, without having lost anything in between.
    apply_ready(ns, "steady")
    assert snapshot(ns, "steady")["deployments.apps"]["uid"] == before["deployments.apps"]["uid"]


def _yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj)
