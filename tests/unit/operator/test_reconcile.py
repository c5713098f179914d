"""The reconcile layer on an in-memory API (fake_kube.py): what it writes, and the status."""

from __future__ import annotations

from typing import Any

from fake_kube import FakeKube
from specs import cr

from deepseek_operator import reconcile as rc

CR_KEY = ("deepseek.ai/v1alpha1", "DeepSeekDeployment", "ai", "r1")


def conditions(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in kube.objects[CR_KEY]["status"]["conditions"]}


def test_reconcile_applies_every_child_and_writes_status() -> None:
    kube = FakeKube()
    body = kube.put(cr())
    outcome = rc.reconcile(kube, body)
    assert outcome.valid and kube.events == []
    assert kube.kinds("ai") == [
        "ConfigMap",
        "DeepSeekDeployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    owner = kube.find("Deployment", "ai", "r1")["metadata"]["ownerReferences"]  # type: ignore[index]
    assert owner[0]["uid"] == body["metadata"]["uid"]
    status = kube.objects[CR_KEY]["status"]
    assert status["observedGeneration"] == 1 and status["gpus"] == 1


def test_each_unserved_kind_gets_its_own_condition() -> None:
    """Item 6: KEDA and prometheus-operator both missing are two problems, two conditions."""
    kube = FakeKube(unserved={"ScaledObject", "ServiceMonitor"})
    body = kube.put(cr(**{"autoscaling.mode": "keda", "monitoring.serviceMonitor": True}))
    outcome = rc.reconcile(kube, body)
    found = conditions(kube)
    assert "Warning" not in found
    assert (found["Autoscaling"]["status"], found["Autoscaling"]["reason"]) == (
        "False",
        "KindNotInstalled",
    )
    assert "install KEDA" in found["Autoscaling"]["message"]
    assert (found["Monitoring"]["status"], found["Monitoring"]["reason"]) == (
        "False",
        "KindNotInstalled",
    )
    assert "prometheus-operator" in found["Monitoring"]["message"]
    assert outcome.valid
    assert [(e["reason"], e["message"]) for e in kube.events] == [
        (found["Autoscaling"]["reason"], found["Autoscaling"]["message"]),
        (found["Monitoring"]["reason"], found["Monitoring"]["message"]),
    ]
    # A status refresh reads the same world and keeps saying both.
    rc.refresh_status(kube, kube.objects[CR_KEY])
    assert {"Autoscaling", "Monitoring"} <= set(conditions(kube))
    assert conditions(kube)["Monitoring"]["reason"] == "KindNotInstalled"


def test_a_field_gone_from_the_plan_is_gone_from_the_status() -> None:
    """Status is written as a JSON merge patch, where an absent key keeps the old value: the
    product pinned before must not linger once the spec names none."""
    kube = FakeKube()
    rc.reconcile(kube, kube.put(cr()))
    assert kube.objects[CR_KEY]["status"]["gpuPlan"]["product"] == "NVIDIA-A100-SXM4-80GB"
    rc.reconcile(kube, kube.put(cr(**{"resources.gpu": {"count": "auto"}})))
    plan = kube.objects[CR_KEY]["status"]["gpuPlan"]
    assert "product" not in plan, plan
    assert conditions(kube)["GpuPlanned"]["reason"] == "AssumedGpu"
    # ... and a refresh of an unchanged world writes nothing.
    writes = len([c for c in kube.calls if c[0] == "patch_status"])
    assert rc.refresh_status(kube, kube.objects[CR_KEY]) is None
    assert len([c for c in kube.calls if c[0] == "patch_status"]) == writes


R1_BF16 = {
    "model.name": "deepseek-ai/DeepSeek-R1",
    "quantization": "bf16",
    "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}
# What a spec that grows beyond one node must leave alone while LeaderWorkerSets are missing.
CHILDREN = [
    ("Deployment", "r1"),
    ("ConfigMap", "r1-runtime"),
    ("Service", "r1"),
    ("HorizontalPodAutoscaler", "r1"),
]


def test_without_leader_worker_sets_a_group_is_refused_once_and_nothing_applied() -> None:
    kube = FakeKube(unserved={"LeaderWorkerSet"})
    rc.reconcile(kube, kube.put(cr(**R1_BF16)))
    assert kube.kinds("ai") == ["DeepSeekDeployment"]  # no half of the children
    ready = conditions(kube)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "LeaderWorkerSetNotInstalled")
    assert "install LeaderWorkerSet" in ready["message"]
    assert [e["reason"] for e in kube.events] == ["LeaderWorkerSetNotInstalled"]
    rc.refresh_status(kube, kube.objects[CR_KEY])
    rc.reconcile(kube, kube.objects[CR_KEY])
    assert conditions(kube)["Ready"]["reason"] == "LeaderWorkerSetNotInstalled"
    assert len(kube.events) == 1 and kube.kinds("ai") == ["DeepSeekDeployment"]


def test_a_spec_grown_beyond_one_node_leaves_the_running_children_while_lws_is_missing() -> None:
    kube = FakeKube(unserved={"LeaderWorkerSet"})
    rc.reconcile(kube, kube.put(cr()))
    before = {kind: kube.find(kind, "ai", name) for kind, name in CHILDREN}
    rc.reconcile(kube, kube.put(cr(**R1_BF16)))
    assert {kind: kube.find(kind, "ai", name) for kind, name in CHILDREN} == before
    assert conditions(kube)["Ready"]["reason"] == "LeaderWorkerSetNotInstalled"


def test_the_workload_kind_follows_the_plan_both_ways() -> None:
    kube = FakeKube()
    rc.reconcile(kube, kube.put(cr()))
    assert kube.find("Deployment", "ai", "r1") and not kube.find("LeaderWorkerSet", "ai", "r1")
    rc.reconcile(kube, kube.put(cr(**R1_BF16)))
    assert kube.find("LeaderWorkerSet", "ai", "r1") and not kube.find("Deployment", "ai", "r1")
    hpa = kube.find("HorizontalPodAutoscaler", "ai", "r1")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    status = kube.objects[CR_KEY]["status"]
    assert (status["gpus"], status["nodes"], status["ready"]) == (8, 4, "0/1")
    assert conditions(kube)["Ready"]["message"].startswith("0/1 groups ready")
    rc.reconcile(kube, kube.put(cr()))
    assert kube.find("Deployment", "ai", "r1") and not kube.find("LeaderWorkerSet", "ai", "r1")
    assert kube.objects[CR_KEY]["status"]["nodes"] == 1


def test_a_group_whose_pods_names_would_be_too_long_is_spec_invalid() -> None:
    kube = FakeKube()
    body = kube.put(cr(name="r" * 49, **R1_BF16))
    outcome = rc.reconcile(kube, body)
    assert not outcome.valid and outcome.message.startswith("metadata.name: 4 nodes per replica")
    assert kube.kinds("ai") == ["DeepSeekDeployment"]
