"""The operator (working tree, chart's ServiceAccount) against a real API server, controller-
manager, scheduler and kwok: children with the right fields, pods on GPU nodes, status, printer
columns, the scale subresource, rollouts, drift repair, garbage collection, Pod Security."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from clusterkit import (
    CHILDREN,
    CHILDREN_WITHOUT_HPA,
    CONFIG_HASH,
    READY_TIMEOUT,
    REPO,
    Kubectl,
    OperatorProcess,
    apply_ready,
    child_kinds,
    condition,
    dsd,
    load_example,
    pods_of,
    wait_children,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.cluster

EXAMPLE = REPO / "examples" / "r1-distill-qwen-7b.yaml"
# A deleted child comes back on the operator's next look: a watch event or its drift repair.
REPAIR_TIMEOUT = 90.0


def example_objects() -> list[dict[str, Any]]:
    """The example the README shows (with the PVC it needs), or an equivalent CR until the
    example exists."""
    if EXAMPLE.exists():
        docs = load_example(EXAMPLE)
    else:
        docs = [
            dsd(
                "r1-distill-7b",
                {
                    "autoscaling": {
                        "mode": "hpa",
                        "minReplicas": 1,
                        "maxReplicas": 4,
                        "targetQueueLength": 8,
                    }
                },
            )
        ]
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for doc in list(docs):
        pvc = doc.get("spec", {}).get("model", {}).get("source", {}).get("pvc")
        if doc["kind"] == "DeepSeekDeployment" and pvc and pvc["claimName"] not in claims:
            # kwok's volume stages provision and bind it (hack/localcluster's default class).
            docs.insert(0, pvc_manifest(pvc["claimName"]))
    return docs


def pvc_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "100Gi"}}},
    }


def the_dsd(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "DeepSeekDeployment"]
    return found


def test_example_reconciles_to_ready(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    docs = example_objects()
    cr_doc = the_dsd(docs)
    name, spec = cr_doc["metadata"]["name"], cr_doc["spec"]
    ns.apply(*docs)
    kinds = child_kinds(spec)
    children = wait_children(ns, name, kinds)
    cr = ns.get("dsd", name)
    assert cr is not None

    # Every child: labelled, and owned by the CR (so the garbage collector can remove it).
    for kind, child in children.items():
        meta = child["metadata"]
        assert meta["labels"]["app.kubernetes.io/name"] == "deepseek-runtime", kind
        assert meta["labels"]["app.kubernetes.io/instance"] == name, kind
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "deepseek-operator", kind
        (owner,) = meta["ownerReferences"]
        assert owner["kind"] == "DeepSeekDeployment" and owner["uid"] == cr["metadata"]["uid"]
        assert owner["controller"] is True and owner["blockOwnerDeletion"] is True, kind

    selector = {"app.kubernetes.io/name": "deepseek-runtime", "app.kubernetes.io/instance": name}
    deployment = children["deployments.apps"]
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    assert CONFIG_HASH in template["metadata"]["annotations"]
    pod_spec = template["spec"]
    assert pod_spec["serviceAccountName"] == name
    (runtime,) = pod_spec["containers"]
    assert int(runtime["resources"]["requests"]["nvidia.com/gpu"]) >= 1
    assert (
        runtime["resources"]["limits"]["nvidia.com/gpu"]
        == runtime["resources"]["requests"]["nvidia.com/gpu"]
    )
    assert any(v.get("configMap", {}).get("name") == f"{name}-runtime" for v in pod_spec["volumes"])
    product = spec.get("resources", {}).get("gpu", {}).get("product")
    if product:
        assert pod_spec["nodeSelector"]["nvidia.com/gpu.product"] == product

    service = children["services"]
    assert service["spec"]["selector"] == selector
    assert {"http", "metrics"} <= {p["name"] for p in service["spec"]["ports"]}

    pdb = children["poddisruptionbudgets.policy"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    policy = children["networkpolicies.networking.k8s.io"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    config = yaml.safe_load(children["configmaps"]["data"]["runtime.yaml"])
    assert config["served_model_name"] == spec["model"]["name"]

    auto = spec.get("autoscaling")
    if auto and auto.get("mode", "hpa") == "hpa":
        hpa = children["horizontalpodautoscalers.autoscaling"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] == auto.get("minReplicas", 1)
        assert hpa["spec"]["maxReplicas"] == auto.get("maxReplicas", 1)
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == "deepseek_requests_waiting"
        assert metric["pods"]["target"]["type"] == "AverageValue"
        assert str(metric["pods"]["target"]["averageValue"]) == str(
            auto.get("targetQueueLength", 8)
        )

    cr = wait_ready(ns, name)
    status = cr["status"]
    assert status["readyReplicas"] >= 1
    assert status["endpoint"] == f"http://{name}.{namespace}.svc:8080/v1"
    assert status["gpuPlan"]["gpusPerReplica"] >= 1
    assert condition(cr, "Ready")["status"] == "True"  # type: ignore[index]

    # The pods were scheduled onto the fake GPU nodes with their GPUs, and admitted by the
    # restricted Pod Security Standard the namespace enforces.
    pods = pods_of(ns, name)
    assert pods
    for pod in pods:
        node = kubectl.get("node", pod["spec"]["nodeName"])
        assert node is not None and node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        if product:
            assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == product
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        assert int(requests["nvidia.com/gpu"]) == status["gpuPlan"]["gpusPerReplica"]

    # `kubectl get dsd` shows what the operator decided.
    table = ns("get", "dsd").stdout.splitlines()
    header = ["NAME", "MODEL", "QUANT", "GPUS", "NODES", "READY", "PHASE", "AGE"]
    assert table[0].split() == header
    row = table[1].split()
    assert row[:3] == [name, spec["model"]["name"], spec.get("quantization", "none")]
    assert row[3:5] == [str(status["gpus"]), "1"] and row[6] == "Ready"


def test_pods_meet_the_restricted_standard(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "psa", {"replicas": 2})
    pods = pods_of(ns, "psa")
    assert len(pods) == 2, "the restricted namespace refused the pods"
    labels = kubectl.get("namespace", namespace)["metadata"]["labels"]  # type: ignore[index]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The API server re-checks every running pod against the level on a dry-run relabel and
    # warns about each violation.
    relabel = kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "--overwrite",
        "--dry-run=server",
    )
    assert "violate" not in relabel.stderr.lower(), relabel.stderr
    for pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
        assert not any("hostPath" in volume for volume in spec["volumes"])


def test_scale_subresource_moves_the_deployment(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "scaled")
    assert ns.get("hpa", "scaled") is None, "autoscaling absent means no HPA"
    ns("scale", "dsd/scaled", "--replicas=3")
    wait_until(
        lambda: (ns.get("deployment", "scaled") or {}).get("spec", {}).get("replicas") == 3,
        READY_TIMEOUT,
        "the Deployment at 3 replicas",
    )
    cr = wait_ready(ns, "scaled")
    assert cr["spec"]["replicas"] == 3
    cr = wait_until(
        lambda: (c := ns.get("dsd", "scaled")) and c["status"].get("readyReplicas") == 3 and c,
        READY_TIMEOUT,
        "3 ready replicas in the status",
    )
    assert cr["status"]["ready"] == "3/3"
    # Scaling adds pods; it must not replace the first one (on GPUs, a model reload each).
    replica_sets = ns.items("replicasets", "app.kubernetes.io/instance=scaled")
    assert len(replica_sets) == 1, [rs["metadata"]["name"] for rs in replica_sets]
    # The scale subresource reads back through the CR's own status.
    scale = json.loads(
        ns(
            "get",
            "--raw",
            f"/apis/deepseek.ai/v1alpha1/namespaces/{namespace}/deepseekdeployments/scaled/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert "app.kubernetes.io/instance=scaled" in scale["status"]["selector"]


def test_spec_change_rolls_the_pods(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "rolling")
    before = ns.get("deployment", "rolling")
    assert before is not None
    old_hash = before["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    old_pods = {p["metadata"]["uid"] for p in pods_of(ns, "rolling")}

    ns("patch", "dsd/rolling", "--type=merge", "-p", '{"spec":{"runtime":{"maxQueueLength":128}}}')
    after = wait_until(
        lambda: (
            (d := ns.get("deployment", "rolling"))
            and d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH] != old_hash
            and d
        ),
        READY_TIMEOUT,
        "a new config hash on the pod template",
    )
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    config = yaml.safe_load(ns.get("configmap", "rolling-runtime")["data"]["runtime.yaml"])  # type: ignore[index]
    assert config["max_queue"] == 128
    wait_ready(ns, "rolling")

    def replaced() -> list[dict[str, Any]] | None:
        pods = pods_of(ns, "rolling")
        fresh = pods and not {p["metadata"]["uid"] for p in pods} & old_pods
        return pods if fresh else None

    new_pods = wait_until(replaced, READY_TIMEOUT, "the old pods replaced")
    for pod in new_pods:
        assert pod["metadata"]["annotations"][CONFIG_HASH] != old_hash


def test_deleted_children_come_back(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "drift", {"autoscaling": {"mode": "hpa", "minReplicas": 1, "maxReplicas": 2}})
    before = wait_children(ns, "drift", CHILDREN)
    for kind, child in before.items():
        ns("delete", kind, child["metadata"]["name"], "--wait=false")

    def replaced() -> bool:
        for kind, child in before.items():
            now = ns.get(kind, child["metadata"]["name"])
            if not now or now["metadata"]["uid"] == child["metadata"]["uid"]:
                return False
        return True

    wait_until(
        replaced,
        REPAIR_TIMEOUT,
        "every deleted child recreated",
        interval=1.0,
        describe=operator.tail,
    )
    wait_ready(ns, "drift", timeout=REPAIR_TIMEOUT)


def test_deleting_the_cr_collects_every_child(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    apply_ready(ns, "doomed", {"autoscaling": {"mode": "hpa", "minReplicas": 1, "maxReplicas": 2}})
    wait_children(ns, "doomed", CHILDREN)
    ns("delete", "dsd/doomed", "--timeout=60s")

    def gone() -> bool:
        left = [kind for kind in CHILDREN if ns.get(kind, CHILDREN[kind]("doomed"))]
        return (
            not left
            and not pods_of(ns, "doomed")
            and not ns.items("replicasets", "app.kubernetes.io/instance=doomed")
        )

    # The controller-manager's garbage collector follows the owner references.
    wait_until(gone, READY_TIMEOUT, "every child garbage-collected", interval=1.0)


def test_apply_to_children_latency_one_cr(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess
) -> None:
    """A smoke number for the bench's target (< 0.5 s p50 with one CR); a generous bound here
    because kubectl's own start-up is in the measurement."""
    ns = kubectl.ns(namespace)
    started = time.monotonic()
    ns.apply(dsd("quick"))
    wait_children(ns, "quick", CHILDREN_WITHOUT_HPA)
    assert time.monotonic() - started < 15
