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
    fields, ready = st.from_deployment(recorded.deployment(2, 2), 3)
    assert fields["phase"] == "Ready" and fields["ready"] == "2/2"
    assert ready["status"] == "True" and ready["observedGeneration"] == 3


def test_progressing_and_pending() -> None:
    assert st.from_deployment(recorded.deployment(2, 0), 1)[0]["phase"] == "Progressing"
    assert st.from_deployment(recorded.deployment(2, 0, replicas=0), 1)[0]["phase"] == "Pending"
    assert st.from_deployment(None, 1)[0]["phase"] == "Pending"
    assert st.from_deployment(recorded.deployment(3, 1), 1)[0]["phase"] == "Degraded"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = st.merge_conditions([], [st.condition("Ready", False, "X", "", 1)], "t1")
    same = st.merge_conditions(first, [st.condition("Ready", False, "Y", "", 2)], "t2")
    flipped = st.merge_conditions(same, [st.condition("Ready", True, "Z", "", 3)], "t3")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "Y"
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_status_of_a_ready_deployment() -> None:
    t = target()
    observed = st.Observed(deployment=recorded.deployment(1, 1), pods=[recorded.pod()])
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
    observed = st.Observed(deployment=recorded.deployment(1, 0))
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
