from __future__ import annotations

from deepseek_operator import status as st


def deployment(
    desired: int, ready: int, replicas: int | None = None, updated: int | None = None
) -> dict:
    return {
        "spec": {"replicas": desired},
        "status": {
            "replicas": desired if replicas is None else replicas,
            "readyReplicas": ready,
            "updatedReplicas": desired if updated is None else updated,
        },
    }


def test_ready_when_all_replicas_ready() -> None:
    fields, ready = st.from_deployment(deployment(2, 2), 3)
    assert fields["phase"] == "Ready" and fields["ready"] == "2/2"
    assert ready["status"] == "True" and ready["observedGeneration"] == 3


def test_progressing_and_pending() -> None:
    assert st.from_deployment(deployment(2, 0), 1)[0]["phase"] == "Progressing"
    assert st.from_deployment(deployment(2, 0, replicas=0), 1)[0]["phase"] == "Pending"
    assert st.from_deployment(None, 1)[0]["phase"] == "Pending"
    assert st.from_deployment(deployment(3, 1), 1)[0]["phase"] == "Degraded"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = st.merge_conditions([], [st.condition("Ready", False, "X", "", 1)], "t1")
    same = st.merge_conditions(first, [st.condition("Ready", False, "Y", "", 2)], "t2")
    flipped = st.merge_conditions(same, [st.condition("Ready", True, "Z", "", 3)], "t3")
    assert same[0]["lastTransitionTime"] == "t1" and same[0]["reason"] == "Y"
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_weights_verified_reports_the_file_from_the_init_container() -> None:
    pod = {
        "status": {
            "initContainerStatuses": [
                {
                    "name": "verify-weights",
                    "state": {
                        "terminated": {
                            "exitCode": 1,
                            "message": "model-00001.safetensors: sha256 differs",
                        }
                    },
                }
            ]
        }
    }
    cond = st.weights_verified([pod], 1)
    assert cond["status"] == "False" and "model-00001.safetensors" in cond["message"]
    ok = {
        "status": {
            "initContainerStatuses": [
                {"name": "verify-weights", "state": {"terminated": {"exitCode": 0}}}
            ]
        }
    }
    assert st.weights_verified([ok], 1)["status"] == "True"
    assert st.weights_verified([], 1)["status"] == "Unknown"
