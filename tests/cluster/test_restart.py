"""SIGKILL the operator while it reconciles 20 DeepSeekDeployments, start it again, and end with
exactly the right children: none duplicated, none missing, no pod rolled by the restart."""

from __future__ import annotations

import contextlib
import select
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
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
PRODUCTS = ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB")


def fleet() -> list[dict[str, Any]]:
    """Half with an HPA, half with fixed replicas. The ten HPA-driven pods take one GPU each,
    split over the two fake 8-GPU nodes so that all fit; the fixed ones run zero replicas."""
    out = []
    for i in range(COUNT):
        product = PRODUCTS[(i // 2) % 2]
        spec: dict[str, Any] = {"resources": {"gpu": {"count": 1, "product": product}}}
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


@contextlib.contextmanager
def first_child_watch(ns: Kubectl) -> Iterator[Callable[..., None]]:
    """`kubectl get --watch` on the first kind the operator writes; the returned function
    blocks until that watch has printed `count` new objects."""
    command = [str(ns.binary), f"--kubeconfig={ns.kubeconfig}", f"--namespace={ns.namespace}"]
    command += ["get", "serviceaccounts", "--watch", "--output=name"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    # The watch must be open before anything is applied. kubectl lists, prints, then watches
    # from that list's resourceVersion: once the namespace's own "default" ServiceAccount is
    # printed, the next line is the operator's first child.
    assert watcher.stdout is not None
    listed, _, _ = select.select([watcher.stdout], [], [], 30)
    assert listed and watcher.stdout.readline().strip() == "serviceaccount/default"

    def wait_first(count: int, timeout: float) -> None:
        assert watcher.stdout is not None
        for _ in range(count):
            ready, _, _ = select.select([watcher.stdout], [], [], timeout)
            assert ready, "no child appeared"
            watcher.stdout.readline()

    try:
        yield wait_first
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


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
    # Kill it part-way, deterministically: the CRs go in one `kubectl apply` at a time, and the
    # operator dies as the fifth CR gets its first child, while later CRs are still arriving.
    # Those are created while no operator runs, so the restart meets both half-reconciled and
    # never-seen resources.
    with first_child_watch(ns) as first_child:
        applier = threading.Thread(target=lambda: [ns.apply(cr) for cr in crs], daemon=True)
        applier.start()
        first_child(5, timeout=60)
        operator.kill()
        applier.join(timeout=120)
    assert not operator.alive()
    assert len(ns.items("deepseekdeployments")) == COUNT
    partial = set(managed_children(ns))
    want = expected_children(crs)
    assert len(partial) < len(want), "the operator finished before the kill: not mid-reconcile"
    print(f"killed with {len(partial)} of {len(want)} children in place")

    operator.start()
    wait_until(
        lambda: set(managed_children(ns)) == want,
        120,
        "exactly the expected children",
        interval=1.0,
        describe=operator.tail,
    )
    wait_until(
        lambda: all_settled(ns),
        120,
        "all 20 Ready",
        interval=1.0,
        describe=lambda: ns("get", "dsd,pods", "-o", "wide").stdout + operator.tail(),
    )

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
