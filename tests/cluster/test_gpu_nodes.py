"""A spec that names no GPU is sized for the GPUs the cluster's nodes advertise (the two fake
nodes: an H100 and an A100 80GB), and pinned to a product only when some cannot serve it."""

from __future__ import annotations

import pytest
from clusterkit import Kubectl, OperatorProcess, apply_ready, condition, pods_of

pytestmark = pytest.mark.cluster

NO_PRODUCT = {"resources": {"gpu": {"product": None, "count": "auto"}}}


def test_no_product_is_sized_for_the_nodes_and_pinned_to_none(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    cr = apply_ready(ns, "any-gpu", {**NO_PRODUCT, "replicas": 2})
    planned = condition(cr, "GpuPlanned")
    assert planned is not None and planned["reason"] == "SizedForCluster", planned
    assert "NVIDIA-A100-SXM4-80GB, NVIDIA-H100-80GB-HBM3" in planned["message"]
    assert "the pods run only on" not in planned["message"]
    template = ns.get("deployment", "any-gpu")["spec"]["template"]["spec"]  # type: ignore[index]
    assert "nvidia.com/gpu.product" not in (template.get("nodeSelector") or {})
    assert "affinity" not in template
    assert "product" not in cr["status"]["gpuPlan"]


def test_products_that_cannot_serve_are_kept_off(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    cr = apply_ready(ns, "fp8", {**NO_PRODUCT, "quantization": "fp8", "replicas": 2})
    planned = condition(cr, "GpuPlanned")
    assert (
        planned is not None and "the pods run only on NVIDIA-H100-80GB-HBM3" in planned["message"]
    )
    assert cr["status"]["gpuPlan"]["product"] == "NVIDIA-H100-80GB-HBM3"
    for pod in pods_of(ns, "fp8"):
        node = kubectl.get("node", pod["spec"]["nodeName"])
        assert node is not None
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
