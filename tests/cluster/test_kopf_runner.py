"""The handlers in-process under kopf.testing.KopfRunner, against the real API server.

The rest of the suite runs the operator as a separate process (as a user would); this one
drives kopf's own test harness, so a failure points at the handlers rather than at packaging.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import (
    CHILDREN_WITHOUT_HPA,
    Kubectl,
    condition,
    dsd,
    wait_children,
    wait_ready,
    wait_until,
)
from kopf.testing import KopfRunner

from deepseek_operator import kube as kube_module

pytestmark = pytest.mark.cluster

SPEC: dict[str, Any] = {
    "model": {
        "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "source": {"image": {"path": "/models"}},
    },
    "quantization": "bf16",
    "resources": {
        "gpu": {"count": "auto", "product": "NVIDIA-H100-80GB-HBM3"},
        "cpu": "1",
        "memory": "4Gi",
    },
}


@pytest.fixture
def runner(cluster: Any, crd: Any, namespace: str) -> Iterator[KopfRunner]:
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    kube_module._kube = None  # the client reads KUBECONFIG on first use
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "deepseek_operator.handlers"]
    with KopfRunner(args, timeout=60) as kopf_runner:
        yield kopf_runner
    kube_module._kube = None
    if old is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = old
    assert kopf_runner.exception is None, kopf_runner.exception
    assert kopf_runner.exit_code == 0, kopf_runner.output


def test_create_then_invalid_update_under_kopf_runner(
    runner: KopfRunner, kubectl: Kubectl, namespace: str
) -> None:
    ns = kubectl.ns(namespace)
    ns.apply(dsd("kr", SPEC))
    children = wait_children(ns, "kr", CHILDREN_WITHOUT_HPA)
    deployment = children["deployments.apps"]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == "1"
    )
    ready_cr = wait_ready(ns, "kr")
    # No finalizer: deleting the CR must never depend on the operator being alive.
    assert not ready_cr["metadata"].get("finalizers")
    status = ready_cr["status"]
    assert status["gpuPlan"]["gpusPerReplica"] == 1
    assert status["endpoint"] == f"http://kr.{namespace}.svc:8080/v1"

    # Schema-valid but unservable: 671B in bf16 on one L4. Children must stay as they are.
    before = ns.get("deployments.apps", "kr")
    assert before is not None
    ns(
        "patch",
        "dsd",
        "kr",
        "--type=merge",
        "-p",
        '{"spec": {"model": {"name": "deepseek-ai/DeepSeek-R1"}, "resources": {"gpu": '
        '{"count": 1, "product": "NVIDIA-L4"}}}}',
    )

    def spec_invalid() -> dict[str, Any] | None:
        obj = ns.get("dsd", "kr")
        ready = condition(obj or {}, "Ready")
        return ready if ready and ready.get("reason") == "SpecInvalid" else None

    ready = wait_until(spec_invalid, 30, "Ready=False/SpecInvalid")
    assert ready["status"] == "False"
    assert "spec.resources.gpu" in ready["message"] and "DeepSeek-R1" in ready["message"]
    after = ns.get("deployments.apps", "kr")
    assert after is not None
    # Status moves as kwok readies pods; what the operator writes (spec, generation) must not.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]

    def warning_event() -> list[dict[str, Any]] | None:
        events = ns.json("events", "--field-selector", "reason=SpecInvalid")["items"]
        return [e for e in events if e["involvedObject"]["name"] == "kr"] or None

    event = wait_until(warning_event, 30, "a SpecInvalid event")[0]
    assert event["type"] == "Warning" and "spec.resources.gpu" in event["message"]


def test_deleting_a_cr_works_after_the_operator_is_gone(
    cluster: Any, crd: Any, kubectl: Kubectl, namespace: str
) -> None:
    ns = kubectl.ns(namespace)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    kube_module._kube = None
    args = ["run", "--standalone", f"--namespace={namespace}", "-m", "deepseek_operator.handlers"]
    with KopfRunner(args, timeout=60) as kopf_runner:
        ns.apply(dsd("gone", SPEC))
        wait_children(ns, "gone", CHILDREN_WITHOUT_HPA)
    assert kopf_runner.exception is None
    # The operator is stopped (as after `helm uninstall`): deletion must still complete.
    ns("delete", "dsd", "gone", "--timeout=30s")
    assert ns.get("dsd", "gone") is None
