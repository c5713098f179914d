from __future__ import annotations

from typing import Any

import recorded
from specs import cr

from deepseek_operator import status as st
from deepseek_operator.manifests import Target
from deepseek_operator.reconcile import validate


def target(**changes: Any) -> Target:
    found, problems = validate(cr(**changes))
    assert found is not None, problems
    return found


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_ready_when_all_replicas_ready() -> None:
    fields, ready = st.from_workload(recorded.deployment(2, 2), 3)
    assert fields["phase"] == "Ready" and fields["ready"] == "2/2"
    assert ready["status"] == "True" and ready["observedGeneration"] == 3


def test_progressing_and_pending() -> None:
    assert st.from_workload(recorded.deployment(2, 0), 1)[0]["phase"] == "Progressing"
    assert st.from_workload(recorded.deployment(2, 0, replicas=0), 1)[0]["phase"] == "Pending"
    assert st.from_workload(None, 1)[0]["phase"] == "Pending"
    assert st.from_workload(recorded.deployment(3, 1), 1)[0]["phase"] == "Degraded"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = st.merge_conditions([], [st.condition("Ready", False, "X", "", 1)], "t1")
    same = st.merge_conditions(first, [st.condition("Ready", False, "Y", "", 2)], "t2")
    flipped = st.merge_conditions(same, [st.condition("Ready", True, "Z", "", 3)], "t3")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "Y"
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_status_of_a_ready_deployment() -> None:
    t = target()
    observed = st.Observed(workload=recorded.deployment(1, 1), pods=[recorded.pod()])
    status = st.status_of(t, observed, {}, 4)
    assert status["phase"] == "Ready" and status["ready"] == "1/1"
    assert status["readyReplicas"] == 1 and status["observedGeneration"] == 4
    assert status["endpoint"] == "http://r1.ai.svc:8080/v1"
    assert (
        status["selector"]
        == "app.kubernetes.io/name=deepseek-runtime,app.kubernetes.io/instance=r1"
    )
    assert status["gpus"] == 1 and status["gpuPlan"]["gpusPerReplica"] == 1
    found = conditions(status)
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "GpuPlanned",
        "Authenticated",
        "Autoscaling",
    ]
    assert found["Ready"]["reason"] == "Available"
    assert found["GpuPlanned"]["message"] == t.plan.summary()  # type: ignore[union-attr]
    assert (found["Authenticated"]["status"], found["Authenticated"]["reason"]) == (
        "False",
        "NoApiKeys",
    )


def test_status_of_keeps_transition_times_that_did_not_flip() -> None:
    t = target()
    observed = st.Observed(workload=recorded.deployment(1, 0))
    old = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "then"}]}
    status = st.status_of(t, observed, old, 1)
    assert conditions(status)["Ready"]["lastTransitionTime"] == "then"
    assert status["phase"] == "Progressing" and status["ready"] == "0/1"


def test_status_of_reports_the_file_the_weights_check_refused() -> None:
    t = target(**{"model.integrity": {"configMap": {"name": "manifest"}}})
    tampered = recorded.pod(
        init_containers=[recorded.verify_weights(1, "model-00001.safetensors: sha256 differs")]
    )
    status = st.status_of(t, st.Observed(recorded.deployment(1, 0), [tampered]), {}, 1)
    verified = conditions(status)["WeightsVerified"]
    assert verified["status"] == "False" and verified["reason"] == "WeightsTampered"
    assert "model-00001.safetensors" in verified["message"]
    ok = recorded.pod(init_containers=[recorded.verify_weights(0)])
    status = st.status_of(t, st.Observed(recorded.deployment(1, 1), [ok]), {}, 1)
    assert conditions(status)["WeightsVerified"]["status"] == "True"
    status = st.status_of(t, st.Observed(recorded.deployment(1, 0), []), {}, 1)
    assert conditions(status)["WeightsVerified"]["status"] == "Unknown"


R1_BF16 = {
    "model.name": "deepseek-ai/DeepSeek-R1",
    "quantization": "bf16",
    "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}


def test_a_leader_worker_set_counts_groups() -> None:
    fields, ready = st.from_workload(recorded.leader_worker_set(2, 2), 3, [], "LeaderWorkerSet")
    assert fields["phase"] == "Ready" and ready["message"] == "2/2 groups ready"
    fields, ready = st.from_workload(recorded.leader_worker_set(2, 1), 3, [], "LeaderWorkerSet")
    assert fields["phase"] == "Degraded" and fields["ready"] == "1/2"
    # Its Available=False still says "All replicas are ready": not repeated as a reason.
    assert ready["message"] == "1/2 groups ready" and ready["reason"] == "PartiallyAvailable"
    _, missing = st.from_workload(None, 3, [], "LeaderWorkerSet")
    assert missing["reason"] == "LeaderWorkerSetMissing"


def test_status_of_a_group_reports_nodes_and_selects_leaders() -> None:
    t = target(**R1_BF16)
    status = st.status_of(t, st.Observed(workload=recorded.leader_worker_set(1, 1)), {}, 2)
    assert status["phase"] == "Ready" and status["ready"] == "1/1"
    assert (status["gpus"], status["nodes"]) == (8, 4)
    plan = status["gpuPlan"]
    assert (plan["gpusPerReplica"], plan["gpusPerNode"], plan["nodes"]) == (32, 8, 4)
    assert status["selector"].endswith(",leaderworkerset.sigs.k8s.io/worker-index=0")
    single = st.status_of(target(), st.Observed(workload=recorded.deployment(1, 1)), {}, 1)
    assert single["nodes"] == 1 and single["gpuPlan"]["nodes"] == 1


def test_a_worker_that_cannot_be_placed_is_why_the_group_is_not_ready() -> None:
    t = target(**R1_BF16)
    worker = recorded.pending("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", "r1-0-3")
    observed = st.Observed(recorded.leader_worker_set(1, 0), [recorded.pod("r1-0"), worker])
    found = conditions(st.status_of(t, observed, {}, 1))["Ready"]
    assert found["reason"] == "Unschedulable"
    assert found["message"].startswith("0/1 groups ready: pod r1-0-3 (Unschedulable): 0/3")


def test_without_the_leader_worker_set_crd_the_status_says_what_to_install() -> None:
    t = target(**R1_BF16)
    status = st.status_of(t, st.Observed(unserved=frozenset({"LeaderWorkerSet"})), {}, 1)
    assert status["phase"] == "Pending" and status["nodes"] == 4
    found = conditions(status)
    ready = found["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "LeaderWorkerSetNotInstalled")
    assert "each replica needs 4 nodes of 8 GPUs" in ready["message"]
    assert "sigs.k8s.io/lws" in ready["message"] and "maxNodes to 1" in ready["message"]
    assert found["GpuPlanned"]["status"] == "True"  # the plan stands; only its kind is missing
    said = st.alerts([], status["conditions"])
    assert said == [("LeaderWorkerSetNotInstalled", ready["message"])]
    assert st.alerts(status["conditions"], status["conditions"]) == []  # once
