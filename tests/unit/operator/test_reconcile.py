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
