"""The LeaderWorkerSet controller of the local cluster (hack/localcluster/lws.py: sigs.k8s.io/lws
built from its module, its webhooks on loopback) runs what the operator writes for a model
larger than one node: each group's leader and worker pods are made by the real controller,
given their place by its pod webhook, and land on the kwok GPU nodes, one node each; the
Service reaches the leaders only; the groups scale with the resource's replicas; the status
counts groups; and the garbage collector removes everything with the resource."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clusterkit import Kubectl, OperatorProcess, condition, dsd, wait_until
from localcluster.lws import WEBHOOK_CONFIGS
from localcluster.nodes import node_manifest

pytestmark = pytest.mark.cluster

LWS = "leaderworkersets.leaderworkerset.x-k8s.io"
# DeepSeek-R1 in int8: 8 GPUs on each of 2 nodes per replica on the fake nodes' 80 GB GPUs.
GROUP_SPEC = {
    "model": {"name": "deepseek-ai/DeepSeek-R1"},
    "quantization": "int8",
    "resources": {"gpu": {"product": None, "count": "auto"}},
}
NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
GROUP_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# Two groups of two whole nodes need four: the cluster's two fake GPU nodes plus these.
SPARE_NODES = ("gpu-node-lws-3", "gpu-node-lws-4")
H100 = ("NVIDIA-H100-80GB-HBM3", 81559)
TIMEOUT = 120.0  # after the CRD-missing test, the controller's watch relists on a backoff


def node_ready(node: dict[str, Any] | None) -> bool:
    if node is None or (node["spec"].get("taints") or []):
        return False
    return (condition(node, "Ready") or {}).get("status") == "True"


@pytest.fixture(autouse=True)
def lws_controller(kubectl: Kubectl) -> None:
    """The cluster runs the LWS controller (localcluster registers its webhooks once it
    serves); a cluster started before it did is refused rather than left to time out."""
    if kubectl.get("mutatingwebhookconfiguration", WEBHOOK_CONFIGS[0]) is None:
        pytest.fail(
            "this cluster runs no LeaderWorkerSet controller (hack/localcluster/lws.py): "
            "`python3 -m localcluster down` it and start it again",
            pytrace=False,
        )


@pytest.fixture
def spare_gpu_nodes(kubectl: Kubectl) -> Iterator[tuple[str, ...]]:
    """Two more fake 8-GPU nodes that kwok keeps Ready, deleted afterwards (the same product as
    gpu-node-1, so the set of products the operator sizes for does not change)."""
    kubectl.apply(*(node_manifest(name, *H100) for name in SPARE_NODES))
    for name in SPARE_NODES:
        wait_until(lambda n=name: node_ready(kubectl.get("node", n)), 60, f"{name} Ready")
    yield SPARE_NODES
    kubectl("delete", "node", *SPARE_NODES, "--ignore-not-found", "--wait=false", check=False)


def group_pods(ns: Kubectl, name: str) -> list[dict[str, Any]]:
    return ns.items("pods", f"{NAME_LABEL}={name}")


def running_groups(ns: Kubectl, name: str, groups: int, size: int) -> list[dict[str, Any]] | None:
    """The pods of exactly `groups` groups of `size`, all bound, Running and not deleting."""
    pods = [p for p in group_pods(ns, name) if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != groups * size:
        return None
    placed = all(p["spec"].get("nodeName") and p["status"].get("phase") == "Running" for p in pods)
    return pods if placed else None


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def check_groups(kubectl: Kubectl, pods: list[dict[str, Any]], groups: int, size: int) -> None:
    """Every group has one leader (worker index 0) and its workers, each pod on a kwok GPU node
    of its own, and the LWS pod webhook gave each its place."""
    places = sorted(
        (int(p["metadata"]["labels"][GROUP_LABEL]), int(p["metadata"]["labels"][WORKER_LABEL]))
        for p in pods
    )
    assert places == [(g, w) for g in range(groups) for w in range(size)]
    nodes = [p["spec"]["nodeName"] for p in pods]
    assert len(set(nodes)) == len(nodes), f"two pods of the groups share a node: {nodes}"
    for pod, node_name in zip(pods, nodes, strict=True):
        node = kubectl.get("node", node_name) or {}
        annotations = node["metadata"].get("annotations") or {}
        assert annotations.get("kwok.x-k8s.io/node") == "fake", node_name
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true", node_name
        labels, env = pod["metadata"]["labels"], env_of(pod)
        # Injected by the controller's pod webhook, which the runtime reads to find its rank.
        assert env["LWS_GROUP_SIZE"] == str(size)
        assert env["LWS_WORKER_INDEX"] == labels[WORKER_LABEL]
        assert env["LWS_LEADER_ADDRESS"].startswith(f"r1-{labels[GROUP_LABEL]}.")
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "8"  # all the GPUs of its node


def leader_endpoints(ns: Kubectl, service: str) -> list[str]:
    slices = ns.items("endpointslices", f"kubernetes.io/service-name={service}")
    return sorted(
        e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or [] if "targetRef" in e
    )


def groups_status(ns: Kubectl, name: str, groups: int) -> dict[str, Any] | None:
    cr = ns.get("dsd", name) or {}
    st = cr.get("status") or {}
    ready = condition(cr, "Ready") or {}
    fresh = st.get("observedGeneration") == cr["metadata"]["generation"]
    wanted = f"{groups}/{groups}"
    return cr if fresh and st.get("ready") == wanted and ready.get("status") == "True" else None


def test_groups_run_on_the_kwok_gpu_nodes_scale_and_go_with_the_resource(
    kubectl: Kubectl,
    spare_gpu_nodes: tuple[str, ...],
    namespace: str,
    operator: OperatorProcess,
) -> None:
    ns = kubectl.ns(namespace)
    ns.apply(dsd("r1", {**GROUP_SPEC, "replicas": 1}))
    lws = wait_until(lambda: ns.get(LWS, "r1"), 60, "LeaderWorkerSet r1", describe=operator.tail)
    assert lws["spec"]["replicas"] == 1 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2

    def describe() -> str:
        return operator.tail(40) + ns("get", "lws,sts,pods,events", "-o", "wide").stdout

    pods = wait_until(
        lambda: running_groups(ns, "r1", 1, 2), TIMEOUT, "one group", describe=describe
    )
    check_groups(kubectl, pods, 1, 2)
    # The leader belongs to the LWS's StatefulSet r1, its worker to the group's r1-0.
    owners = {p["metadata"]["name"]: p["metadata"]["ownerReferences"][0]["name"] for p in pods}
    assert owners == {"r1-0": "r1", "r1-0-1": "r1-0"}

    # The API's Service reaches the leader only: the one pod that runs the servers.
    assert wait_until(lambda: leader_endpoints(ns, "r1") or None, 60, "endpoints") == ["r1-0"]
    cr = wait_until(lambda: groups_status(ns, "r1", 1), 60, "1/1 groups", describe=describe)
    assert condition(cr, "Ready")["message"] == "1/1 groups ready"  # type: ignore[index]
    assert cr["status"]["replicas"] == 1 and cr["status"]["readyReplicas"] == 1

    # What an HPA reads through the scale subresource: the groups, and the leaders' selector.
    path = f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets/r1/scale"
    scale = json.loads(kubectl("get", "--raw", path).stdout)
    assert scale["spec"]["replicas"] == 1
    assert f"{WORKER_LABEL}=0" in scale["status"]["selector"]

    # Two groups: the operator writes the replicas, the controller makes the second group.
    ns("patch", "dsd", "r1", "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}}))
    pods = wait_until(
        lambda: running_groups(ns, "r1", 2, 2), TIMEOUT, "two groups", describe=describe
    )
    check_groups(kubectl, pods, 2, 2)
    assert {p["spec"]["nodeName"] for p in pods} & set(spare_gpu_nodes)
    two = ["r1-0", "r1-1"]
    wait_until(lambda: leader_endpoints(ns, "r1") == two or None, 60, "two leaders' endpoints")
    cr = wait_until(lambda: groups_status(ns, "r1", 2), 60, "2/2 groups", describe=describe)
    assert condition(cr, "Ready")["message"] == "2/2 groups ready"  # type: ignore[index]

    # And back to one: the second group's pods go.
    ns("patch", "dsd", "r1", "--type=merge", "-p", json.dumps({"spec": {"replicas": 1}}))
    pods = wait_until(
        lambda: running_groups(ns, "r1", 1, 2), TIMEOUT, "one group", describe=describe
    )
    check_groups(kubectl, pods, 1, 2)
    wait_until(lambda: groups_status(ns, "r1", 1), 60, "1/1 groups again", describe=describe)

    # Deleting the resource: the garbage collector removes the LWS and, through it, the
    # StatefulSets, the pods and the groups' headless Services.
    delete_and_wait_collected(ns, "r1", describe)


def hpa_target(ns: Kubectl, name: str) -> str:
    (metric,) = (ns.get("hpa", name) or {})["spec"]["metrics"]
    return str(metric["pods"]["target"]["averageValue"])


def delete_and_wait_collected(ns: Kubectl, name: str, describe: Callable[[], str]) -> None:
    ns("delete", "dsd", name, "--wait=false")
    wait_until(
        lambda: not ns("get", "lws,sts,pods,svc", "-o", "name").stdout.split(),
        TIMEOUT,
        "the LWS, its StatefulSets, pods and Services collected",
        describe=describe,
    )


def test_an_autoscaler_scales_the_groups_through_the_scale_subresource(
    kubectl: Kubectl,
    spare_gpu_nodes: tuple[str, ...],
    namespace: str,
    operator: OperatorProcess,
) -> None:
    """With an autoscaler the operator leaves the LWS's replicas alone: what the HPA (or KEDA)
    writes to the scale subresource is what the controller runs and the status counts."""
    ns = kubectl.ns(namespace)
    autoscaling = {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
    ns.apply(dsd("r1", {**GROUP_SPEC, **autoscaling}))

    def describe() -> str:
        return operator.tail(40) + ns("get", "lws,sts,pods,hpa,events", "-o", "wide").stdout

    hpa = wait_until(lambda: ns.get("hpa", "r1"), 60, "the HPA", describe=describe)
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    wait_until(lambda: running_groups(ns, "r1", 1, 2), TIMEOUT, "one group", describe=describe)

    ns("scale", f"{LWS}/r1", "--replicas=2")
    pods = wait_until(
        lambda: running_groups(ns, "r1", 2, 2), TIMEOUT, "two groups", describe=describe
    )
    check_groups(kubectl, pods, 2, 2)
    wait_until(lambda: groups_status(ns, "r1", 2), 60, "2/2 groups", describe=describe)
    # A change of the resource re-applies every child, the LWS without replicas: the
    # autoscaler's two groups stay. (The autoscaler's own setting: the pods, and so the
    # groups, stay as they are.)
    target = {"spec": {"autoscaling": {"targetQueueLength": 4}}}
    ns("patch", "dsd", "r1", "--type=merge", "-p", json.dumps(target))
    wait_until(lambda: hpa_target(ns, "r1") == "4", 60, "the HPA re-applied", describe=describe)
    wait_until(lambda: groups_status(ns, "r1", 2), 60, "2/2 groups after it", describe=describe)
    assert (ns.get(LWS, "r1") or {})["spec"]["replicas"] == 2

    delete_and_wait_collected(ns, "r1", describe)
