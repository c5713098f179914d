"""Item 8 of issue 15: when pods are not ready, the Ready condition says why in the pods' own
words (recorded pod and HPA statuses, shaped as kube-apiserver v1.36 returns them), and each
new problem becomes one Event."""

from __future__ import annotations

from typing import Any

import pytest
import recorded
from specs import cr

from deepseek_operator import status as st
from deepseek_operator.manifests import Target
from deepseek_operator.reconcile import validate

PVC_MISSING = '0/2 nodes are available: persistentvolumeclaim "models" not found. not found'
GPUS_SHORT = (
    "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. no new claims to deallocate, "
    "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
)
NO_METRICS_API = (
    "the HPA was unable to compute the replica count: unable to get metric "
    "deepseek_requests_waiting: unable to fetch metrics from custom metrics API: no custom "
    "metrics API (custom.metrics.k8s.io) registered"
)


def target(**changes: Any) -> Target:
    found, problems = validate(cr(**changes))
    assert found is not None, problems
    return found


def ready_of(*pods: dict[str, Any], desired: int = 1, ready: int = 0) -> dict[str, Any]:
    observed = st.Observed(recorded.deployment(desired, ready), list(pods))
    status = st.status_of(target(), observed, {}, 1)
    return {c["type"]: c for c in status["conditions"]}["Ready"] | {"phase": status["phase"]}


@pytest.mark.parametrize(
    ("pod", "reason", "words"),
    [
        (
            recorded.pending(PVC_MISSING),
            "Unschedulable",
            'persistentvolumeclaim "models" not found',
        ),
        (
            recorded.pending(GPUS_SHORT),
            "Unschedulable",
            "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
        ),
        (
            recorded.waiting(
                "ImagePullBackOff", 'Back-off pulling image "registry.local/deepseek-runtime:0.1.0"'
            ),
            "ImagePullBackOff",
            'container runtime: Back-off pulling image "registry.local/deepseek-runtime:0.1.0"',
        ),
        (
            recorded.waiting(
                "ErrImagePull",
                'failed to pull and unpack image "registry.local/deepseek-runtime:0.1.0": '
                "not found",
            ),
            "ErrImagePull",
            "not found",
        ),
        (
            # imagePullPolicy Never and the node lacks the image (seen on the local real node).
            recorded.waiting(
                "ErrImageNeverPull",
                'Container image "localhost/deepseek-runtime:gone" is not present with pull '
                "policy of Never",
            ),
            "ErrImageNeverPull",
            'Container image "localhost/deepseek-runtime:gone" is not present',
        ),
        (
            recorded.waiting("CreateContainerConfigError", 'secret "api-keys" not found'),
            "CreateContainerConfigError",
            'container runtime: secret "api-keys" not found',
        ),
        (
            recorded.waiting(
                "CrashLoopBackOff",
                "back-off 40s restarting failed container=runtime",
                last={
                    "exitCode": 1,
                    "reason": "Error",
                    "message": "no model at /models/r1-7b: config.json missing\n",
                },
            ),
            "CrashLoopBackOff",
            "container runtime keeps exiting, last with code 1 (Error): no model at "
            "/models/r1-7b: config.json missing",
        ),
        (
            recorded.waiting(
                "CrashLoopBackOff",
                "back-off 20s restarting failed container=runtime",
                last={"exitCode": 137, "reason": "OOMKilled"},
            ),
            "OOMKilled",
            "container runtime was killed for using more than its memory limit of 32Gi",
        ),
        (
            recorded.waiting(
                "CrashLoopBackOff",
                last={"exitCode": 1, "reason": "Error", "message": "model.safetensors: differs"},
                container="verify-weights",
                init=True,
            ),
            "CrashLoopBackOff",
            "container verify-weights keeps exiting, last with code 1 (Error): "
            "model.safetensors: differs",
        ),
    ],
    ids=[
        "pvc-missing",
        "too-few-gpus",
        "image-pull-backoff",
        "err-image-pull",
        "image-never-pulled",
        "missing-secret",
        "crash-loop",
        "oom-killed",
        "init-container-crash",
    ],
)
def test_ready_says_why_in_the_pods_words(pod: dict[str, Any], reason: str, words: str) -> None:
    ready = ready_of(pod)
    assert ready["status"] == "False" and ready["reason"] == reason
    assert ready["message"].startswith(f"0/1 replicas ready: pod {pod['metadata']['name']} ")
    assert words in ready["message"], ready["message"]
    assert "preemption" not in ready["message"]


def test_an_evicted_pod_says_so() -> None:
    evicted = recorded.pod(phase="Failed", containers=[])
    evicted["status"] |= {"reason": "Evicted", "message": "The node was low on resource: memory."}
    ready = ready_of(evicted)
    assert ready["reason"] == "Evicted" and "low on resource: memory" in ready["message"]


def test_one_pod_short_of_gpus_beside_a_ready_one() -> None:
    ready = ready_of(
        recorded.pod(), recorded.pending(GPUS_SHORT, "r1-6d4cf56db6-b2"), desired=2, ready=1
    )
    assert ready["phase"] == "Degraded" and ready["status"] == "True"
    assert ready["reason"] == "Unschedulable"
    assert ready["message"] == (
        "1/2 replicas ready: pod r1-6d4cf56db6-b2 (Unschedulable): "
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    )


def test_pods_with_the_same_problem_are_said_once_the_worst_first() -> None:
    crash = recorded.waiting("CrashLoopBackOff", last={"exitCode": 2, "reason": "Error"})
    crash["metadata"]["name"] = "r1-c"
    pods = [crash, recorded.pending(GPUS_SHORT, "r1-a"), recorded.pending(GPUS_SHORT, "r1-b")]
    ready = ready_of(*pods, desired=3)
    assert ready["reason"] == "Unschedulable"
    assert ready["message"].startswith("0/3 replicas ready: 2 pods (r1-a, r1-b) (Unschedulable)")
    assert "pod r1-c (CrashLoopBackOff)" in ready["message"]


def test_pods_still_starting_are_not_a_problem() -> None:
    starting = recorded.waiting("ContainerCreating")
    assert ready_of(starting)["reason"] == "ReplicasNotReady"


def autoscaling_of(hpa: dict[str, Any] | None) -> dict[str, Any]:
    observed = st.Observed(recorded.deployment(1, 1), [], hpa)
    status = st.status_of(target(), observed, {}, 1)
    return {c["type"]: c for c in status["conditions"]}["Autoscaling"]


def test_a_working_hpa_and_one_not_reported_yet() -> None:
    working = recorded.hpa(
        ("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
        ("ScalingActive", "True", "ValidMetricFound", "the HPA was able to compute the count"),
    )
    assert (autoscaling_of(working)["status"], autoscaling_of(working)["reason"]) == (
        "True",
        "ValidMetricFound",
    )
    assert autoscaling_of(recorded.hpa())["status"] == "Unknown"


def keda_autoscaling_of(scaled_object: dict[str, Any]) -> dict[str, Any]:
    keda = target(autoscaling={"mode": "keda", "minReplicas": 1, "maxReplicas": 3})
    status = st.status_of(keda, st.Observed(recorded.deployment(1, 1), [], scaled_object), {}, 1)
    return {c["type"]: c for c in status["conditions"]}["Autoscaling"]


TRIGGER_ERROR = "Triggers defined in ScaledObject are not working correctly"
NOT_ACTIVE = "Scaling is not performed because triggers are not active"
SO_READY = "ScaledObject is defined correctly and is ready for scaling"
PARTIAL = "Some triggers defined in ScaledObject are not working correctly"


@pytest.mark.parametrize(
    ("mode", "failing", "reason", "message"),
    [
        (
            "hpa",
            lambda: recorded.hpa(
                ("AbleToScale", "True", "SucceededGetScale", "the HPA could get the scale"),
                ("ScalingActive", "False", "FailedGetPodsMetric", NO_METRICS_API),
            ),
            "FailedGetPodsMetric",
            f"HorizontalPodAutoscaler r1: {NO_METRICS_API}",
        ),
        (
            "keda",
            lambda: recorded.scaled_object(
                ("Ready", "False", "TriggerError", TRIGGER_ERROR),
                ("Active", "False", "ScalerNotActive", NOT_ACTIVE),
            ),
            "TriggerError",
            f"ScaledObject r1: {TRIGGER_ERROR}",
        ),
    ],
)
def test_an_autoscaler_that_cannot_read_the_queue_reaches_the_cr_with_its_own_reason(
    mode: str, failing: Any, reason: str, message: str
) -> None:
    of = keda_autoscaling_of if mode == "keda" else autoscaling_of
    cond = of(failing())
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", reason, message)


def test_keda_ready_is_true_and_unknown_stays_unknown() -> None:
    ready = recorded.scaled_object(
        ("Ready", "True", "ScaledObjectReady", SO_READY),
    )
    assert (keda_autoscaling_of(ready)["status"], keda_autoscaling_of(ready)["reason"]) == (
        "True",
        "ScaledObjectReady",
    )
    partial = recorded.scaled_object(
        ("Ready", "Unknown", "PartialTriggerError", PARTIAL),
    )
    cond = keda_autoscaling_of(partial)
    assert (cond["status"], cond["reason"]) == ("Unknown", "PartialTriggerError")


def test_each_new_problem_is_one_event() -> None:
    t = target()
    first = st.status_of(
        t, st.Observed(recorded.deployment(1, 0), [recorded.pending(PVC_MISSING)]), {}, 1
    )
    told = st.alerts([], first["conditions"])
    assert [reason for reason, _ in told] == ["Unschedulable"]
    assert 'persistentvolumeclaim "models" not found' in told[0][1]
    again = st.status_of(
        t, st.Observed(recorded.deployment(1, 0), [recorded.pending(PVC_MISSING)]), first, 1
    )
    assert st.alerts(first["conditions"], again["conditions"]) == []  # said once
    healed = st.status_of(t, st.Observed(recorded.deployment(1, 1), [recorded.pod()]), again, 1)
    assert st.alerts(again["conditions"], healed["conditions"]) == []


MOUNT_FAILED = 'MountVolume.SetUp failed for volume "api-keys" : secret "api-keys" not found'


def failed_mount(pod: str, message: str, at: str) -> dict[str, Any]:
    """A core/v1 Event as the kubelet posts it for a volume it cannot mount."""
    return {
        "kind": "Event",
        "reason": "FailedMount",
        "type": "Warning",
        "involvedObject": {"kind": "Pod", "name": pod},
        "message": message,
        "lastTimestamp": at,
    }


def test_a_volume_that_cannot_mount_is_named_from_the_kubelets_event() -> None:
    """A missing Secret behind a volume leaves the pod in ContainerCreating: only an Event says
    why, and the Ready condition must say it too (seen on the local real node)."""
    stuck = recorded.waiting("ContainerCreating")
    assert st.needs_events([stuck])
    events = [
        failed_mount(stuck["metadata"]["name"], "an older message", "2026-01-01T00:00:00Z"),
        failed_mount(stuck["metadata"]["name"], MOUNT_FAILED, "2026-01-01T00:01:00Z"),
        failed_mount("another-pod", "not ours", "2026-01-01T00:02:00Z"),
    ]
    observed = st.Observed(recorded.deployment(1, 0), [stuck], pod_events=events)
    status = st.status_of(target(), observed, {}, 1)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["reason"] == "FailedMount"
    assert MOUNT_FAILED in ready["message"] and "not ours" not in ready["message"]


def test_a_pod_still_creating_without_an_event_is_not_a_problem() -> None:
    observed = st.Observed(recorded.deployment(1, 0), [recorded.waiting("ContainerCreating")])
    ready = ready_of(recorded.waiting("ContainerCreating"))
    assert ready["reason"] == "ReplicasNotReady", ready
    assert not st.needs_events([recorded.pod()])
    assert observed.pod_events == []
