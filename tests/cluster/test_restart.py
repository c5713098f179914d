"""SIGKILL the operator while it reconciles 20 DeepSeekDeployments, start it again, and end with
exactly the right children: none duplicated, none missing, no pod rolled by the restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from clusterkit import (
    CHILDREN,
    CHILDREN_WITHOUT_HPA,
    Kubectl,
    OperatorProcess,
    dsd,
    wait_until,
)

pytestmark = pytest.mark.cluster

COUNT = 20


def fleet() -> list[dict[str, Any]]:
    """Half with an HPA, half with fixed replicas; one GPU each, any product, so that all
    ten HPA-driven pods fit on the two fake nodes (16 GPUs). Fixed ones run zero replicas."""
    out = []
    for i in range(COUNT):
        spec: dict[str, Any] = {"resources": {"gpu": {"count": 1, "product": None}}}
        if i % 2 == 0:
            spec["autoscaling"] = {"mode": "hpa", "minReplicas": 1, "maxReplicas": 2}
        else:
            spec["replicas"] = 0
        out.append(dsd(f"fleet-{i:02d}", spec))
    return out


def expected_children(crs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    want = set()
    for cr in crs:
        name = cr["metadata"]["name"]
        kinds = CHILDREN if "autoscaling" in cr["spec"] else CHILDREN_WITHOUT_HPA
        want |= {(kind, child(name)) for kind, child in kinds.items()}
    return want


def managed_children(ns: Kubectl) -> list[tuple[str, str]]:
    """Every object in the namespace the operator labelled as its own, by kind and name."""
    items = ns.items(",".join(CHILDREN), "app.kubernetes.io/managed-by=deepseek-operator")
    plural = {
        "Deployment": "deployments.apps",
        "Service": "services",
        "HorizontalPodAutoscaler": "horizontalpodautoscalers.autoscaling",
        "PodDisruptionBudget": "poddisruptionbudgets.policy",
        "NetworkPolicy": "networkpolicies.networking.k8s.io",
        "ServiceAccount": "serviceaccounts",
        "ConfigMap": "configmaps",
    }
    return [(plural[item["kind"]], item["metadata"]["name"]) for item in items]


def all_settled(ns: Kubectl) -> bool:
    crs = ns.items("deepseekdeployments")
    return len(crs) == COUNT and all(
        cr.get("status", {}).get("observedGeneration") == cr["metadata"]["generation"]
        and cr["status"].get("phase") == "Ready"
        for cr in crs
    )


def test_sigkill_mid_reconcile_then_restart(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    crs = fleet()
    ns.apply(*crs)

    # Kill it part-way: some Deployments made, not all of them.
    made = wait_until(
        lambda: len(ns.items("deployments")) >= 3 and len(ns.items("deployments")),
        60,
        "the first Deployments",
        interval=0.1,
        describe=operator.tail,
    )
    operator.kill()
    assert not operator.alive()
    partial = managed_children(ns)
    print(f"killed with {made}+ Deployments and {len(partial)} children in place")

    operator.start()
    want = expected_children(crs)
    wait_until(
        lambda: set(managed_children(ns)) == want,
        120,
        "exactly the expected children",
        interval=1.0,
        describe=operator.tail,
    )
    wait_until(lambda: all_settled(ns), 120, "all 20 Ready", interval=1.0, describe=operator.tail)

    children = managed_children(ns)
    duplicates = [key for key, n in Counter(children).items() if n > 1]
    assert duplicates == [] and set(children) == want
    # Nothing else labelled as ours either (no stray generateName copies of pods' owners).
    replica_sets = ns.items("replicasets")
    owners = Counter(rs["metadata"]["ownerReferences"][0]["name"] for rs in replica_sets)
    assert all(n == 1 for n in owners.values()), f"a restart rolled pods: {owners}"
    for rs in replica_sets:
        assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    deployments = {d["metadata"]["name"]: d for d in ns.items("deployments")}
    assert len(deployments) == COUNT
    for cr in crs:
        name = cr["metadata"]["name"]
        owner = deployments[name]["metadata"]["ownerReferences"]
        assert [o["name"] for o in owner] == [name]
