"""What the restricted pod promises, checked inside the running containers, and the weights
check that runs before the model loads: the good manifest lets the pod start, a tampered one
stops it and the DeepSeekDeployment says why."""

from __future__ import annotations

import json

import pytest
import yaml
from clusterkit import Kubectl, condition, wait_until
from realnode import RealOperator, Served, describe_pods, integrity_manifest, smollm2_objects

# The first test here may install the operator pod and wait for the model to load.
pytestmark = pytest.mark.timeout(1200)


def exec_in(kubectl: Kubectl, served: Served, *command: str) -> tuple[int, str]:
    result = kubectl.ns(served.namespace)(
        "exec", served.pod["metadata"]["name"], "-c", "runtime", "--", *command, check=False
    )
    return result.returncode, result.stdout + result.stderr


def test_runtime_runs_as_non_root_on_a_read_only_root(kubectl: Kubectl, smollm2: Served) -> None:
    code, out = exec_in(kubectl, smollm2, "id", "-u")
    assert code == 0 and out.strip() == "10001", out
    code, out = exec_in(kubectl, smollm2, "touch", "/opt/written")
    assert code != 0 and "Read-only file system" in out, out
    code, out = exec_in(kubectl, smollm2, "touch", "/tmp/written")  # the emptyDir is writable
    assert code == 0, out
    # No service-account token: the runtime never talks to the API server.
    code, out = exec_in(kubectl, smollm2, "ls", "/var/run/secrets/kubernetes.io/serviceaccount")
    assert code != 0 and "No such file" in out, out


def test_weights_were_verified_before_the_model_loaded(smollm2: Served) -> None:
    statuses = {s["name"]: s for s in smollm2.pod["status"].get("initContainerStatuses", [])}
    verify = statuses["verify-weights"]["state"]["terminated"]
    assert verify["exitCode"] == 0 and verify["reason"] == "Completed", verify


def test_tampered_weights_stop_the_pod_and_the_status_says_so(
    kubectl: Kubectl, real_operator: RealOperator, smollm2: Served
) -> None:
    ns = kubectl.ns(real_operator.watched)
    image = smollm2.cr["spec"]["runtime"]["image"]
    manifest = yaml.safe_load(integrity_manifest())
    manifest["files"][0]["sha256"] = "0" * 64  # what a swapped weight file would give
    ns.apply(*smollm2_objects("tampered", image, json.dumps(manifest)))
    try:

        def refused() -> dict[str, object] | None:
            cr = ns.get("dsd", "tampered")
            found = condition(cr, "WeightsVerified") if cr else None
            return found if found and found.get("status") == "False" else None

        verified = wait_until(
            refused, 300, "WeightsVerified False", interval=2, describe=lambda: describe_pods(ns)
        )
        assert "SmolLM2-135M-Instruct.Q4_1.gguf" in str(verified.get("message")), verified
        pods = ns.items("pods", "app.kubernetes.io/instance=tampered")
        assert pods and all(
            not any(c.get("ready") for c in p["status"].get("containerStatuses", [])) for p in pods
        ), "the runtime must not start on weights that fail the check"
    finally:
        ns("delete", "dsd", "tampered", "--wait=false", check=False)
