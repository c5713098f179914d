"""Bad input gets a clear error and loses nothing.

What the schema and CEL can judge, the API server refuses at `kubectl create`, naming the field.
What only sizing can judge (a model that does not fit its GPUs) is admitted, and the operator
answers with Ready=False/SpecInvalid naming the field, leaving running children untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from clusterkit import (
    CHILDREN_WITHOUT_HPA,
    Kubectl,
    OperatorProcess,
    condition,
    dsd,
    make_namespace,
    release_namespace,
    wait_children,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.cluster

# (case id, spec overrides merged onto a valid CR (None deletes a key), words the API server's
# message must contain: the field path first).
INVALID: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("model-missing", {"model": None}, ("spec.model", "Required")),
    ("model-name-empty", {"model": {"name": ""}}, ("spec.model.name",)),
    ("model-name-spaces", {"model": {"name": "deepseek ai/R1"}}, ("spec.model.name",)),
    ("source-missing", {"model": {"source": None}}, ("spec.model.source", "Required")),
    ("source-empty", {"model": {"source": {"image": None}}}, ("spec.model.source", "exactly one")),
    (
        "source-two-kinds",
        {"model": {"source": {"pvc": {"claimName": "models"}}}},
        ("spec.model.source", "exactly one"),
    ),
    (
        "pvc-claim-name",
        {"model": {"source": {"image": None, "pvc": {"claimName": "Bad_Name"}}}},
        ("spec.model.source.pvc.claimName",),
    ),
    ("quantization-unknown", {"quantization": "int3"}, ("spec.quantization", "int3")),
    ("gguf-without-file", {"model": {"format": "gguf"}}, ("spec.model", "ggufFile")),
    (
        "gguf-file-name",
        {"model": {"format": "gguf", "ggufFile": "weights.bin"}, "quantization": "none"},
        ("spec.model.ggufFile",),
    ),
    ("batch-zero", {"runtime": {"maxBatchSize": 0}}, ("spec.runtime.maxBatchSize",)),
    (
        "batch-above-concurrency",
        {"runtime": {"maxBatchSize": 64, "maxConcurrentSequences": 8}},
        ("spec.runtime", "maxBatchSize must not exceed maxConcurrentSequences"),
    ),
    ("gpu-count-zero", {"resources": {"gpu": {"count": 0}}}, ("spec.resources.gpu", "count")),
    ("gpu-count-word", {"resources": {"gpu": {"count": "many"}}}, ("spec.resources.gpu", "count")),
    (
        "gpu-product-and-memory",
        {"resources": {"gpu": {"memoryGiB": 80}}},
        ("spec.resources.gpu", "product or memoryGiB"),
    ),
    ("cpu-quantity", {"resources": {"cpu": "lots"}}, ("spec.resources.cpu",)),
    ("replicas-negative", {"replicas": -1}, ("spec.replicas",)),
    (
        "autoscaling-bounds",
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        ("spec.autoscaling", "minReplicas must not exceed maxReplicas"),
    ),
    ("autoscaling-mode", {"autoscaling": {"mode": "vpa"}}, ("spec.autoscaling.mode", "vpa")),
    ("service-port", {"service": {"port": 70000}}, ("spec.service.port",)),
    ("service-type", {"service": {"type": "ExternalName"}}, ("spec.service.type",)),
    ("allow-from-empty-peer", {"security": {"allowFrom": [{}]}}, ("spec.security.allowFrom[0]",)),
    ("scrape-interval", {"monitoring": {"interval": "soon"}}, ("spec.monitoring.interval",)),
    (
        "pull-policy",
        {"runtime": {"imagePullPolicy": "Sometimes"}},
        ("spec.runtime.imagePullPolicy",),
    ),
    ("unknown-field", {"replicaz": 2}, ("replicaz",)),
]


@pytest.fixture(scope="module")
def validation_namespace(kubectl: Kubectl, crd: dict[str, object]) -> Iterator[str]:
    name = make_namespace(kubectl, "t-validation")
    yield name
    release_namespace(kubectl, name)


def test_enough_cases() -> None:
    assert len(INVALID) >= 15


@pytest.mark.parametrize(("case", "overrides", "words"), INVALID, ids=[c[0] for c in INVALID])
def test_api_server_refuses_invalid_spec(
    kubectl: Kubectl,
    validation_namespace: str,
    case: str,
    overrides: dict[str, Any],
    words: tuple[str, ...],
) -> None:
    ns = kubectl.ns(validation_namespace)
    # kubectl asks for strict field validation, so even an unknown field is an error.
    result = ns("create", "-f", "-", input=_yaml(dsd(f"bad-{case}", overrides)), check=False)
    assert result.returncode != 0, f"{case} was admitted"
    for word in words:
        assert word in result.stderr, f"{case}: {word!r} not in {result.stderr!r}"
    assert ns.get("dsd", f"bad-{case}") is None


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
    ns.apply(dsd("steady"))
    wait_ready(ns, "steady")
    wait_children(ns, "steady", CHILDREN_WITHOUT_HPA)
    before = snapshot(ns, "steady")

    ns.apply(dsd("steady", UNFIT))
    ready = wait_until(lambda: spec_invalid(ns, "steady"), 60, "Ready=False/SpecInvalid")
    assert "spec." in ready["message"], ready
    time.sleep(3)  # let any stray write land before comparing
    assert snapshot(ns, "steady") == before

    # Fixing the spec resumes normal service, without having lost anything in between.
    ns.apply(dsd("steady"))
    wait_ready(ns, "steady")
    assert snapshot(ns, "steady")["deployments.apps"]["uid"] == before["deployments.apps"]["uid"]


def _yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj)
