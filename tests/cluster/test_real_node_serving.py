"""The whole path on real pods: the operator's own image, in its pod under the chart's RBAC,
reconciles a DeepSeekDeployment; the runtime image serves it on the real node; both doors
answer through the Service, with the official clients, from this machine."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton_http
from clusterkit import Kubectl
from openai import OpenAI
from realnode import REAL_NODE, RealOperator, Served, capital_of_france

# The first test here may install the operator pod and wait for the model to load.
pytestmark = pytest.mark.timeout(1200)


def test_operator_runs_as_its_image_in_a_pod(kubectl: Kubectl, real_operator: RealOperator) -> None:
    pod = kubectl.ns(real_operator.namespace).get("pod", real_operator.pod["metadata"]["name"])
    assert pod is not None
    assert pod["spec"]["nodeName"] == REAL_NODE
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["restartCount"] == 0, status
    assert status["imageID"], "a real container runtime reports the image it ran"
    # kopf's liveness endpoint answered the kubelet's probes: the process is really up.
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def test_operator_pod_holds_only_the_charts_rbac(
    kubectl: Kubectl, real_operator: RealOperator
) -> None:
    sa = f"system:serviceaccount:{real_operator.namespace}:{real_operator.service_account}"

    def can(verb: str, resource: str, namespace: str) -> bool:
        result = kubectl(
            "auth", "can-i", verb, resource, f"--as={sa}", "-n", namespace, check=False
        )
        return result.stdout.strip() == "yes"

    assert can("create", "deployments.apps", real_operator.watched)
    assert can("patch", "deepseekdeployments.deepseek.ai/status", real_operator.watched)
    # watchNamespace: a Role in one namespace, nothing in the others.
    assert not can("create", "deployments.apps", "default")
    assert not can("get", "secrets", "kube-system")


def test_operator_pod_reconciled_the_deployment(
    kubectl: Kubectl, real_operator: RealOperator, smollm2: Served
) -> None:
    logs = kubectl.ns(real_operator.namespace)(
        "logs", real_operator.pod["metadata"]["name"], "--tail=2000"
    ).stdout
    assert "smollm2" in logs, logs[-3000:]
    assert smollm2.pod["spec"]["nodeName"] == REAL_NODE
    ready = [c for c in smollm2.cr["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", smollm2.cr["status"]


def test_chat_through_the_service(smollm2: Served) -> None:
    client = OpenAI(base_url=f"http://{smollm2.cluster_ip}:8080/v1", api_key="unused", timeout=120)
    assert "Paris" in capital_of_france(client)


def test_triton_door_and_metrics_through_the_service(smollm2: Served) -> None:
    client = triton_http.InferenceServerClient(f"{smollm2.cluster_ip}:8000", network_timeout=120)
    assert client.is_server_ready()
    batched = "HuggingFaceTB--SmolLM2-135M-Instruct_sync"  # `org/Model` is `org--Model` in Triton
    assert client.is_model_ready(batched)
    prompt = np.array([[b"The capital of France is"]], dtype=object)
    max_tokens = np.array([[8]], dtype=np.int32)
    greedy = np.array([[0.0]], dtype=np.float32)  # the door samples at 1.0 unless told
    inputs = [
        triton_http.InferInput("text_input", list(prompt.shape), "BYTES"),
        triton_http.InferInput("max_tokens", list(max_tokens.shape), "INT32"),
        triton_http.InferInput("temperature", list(greedy.shape), "FP32"),
    ]
    inputs[0].set_data_from_numpy(prompt)
    inputs[1].set_data_from_numpy(max_tokens)
    inputs[2].set_data_from_numpy(greedy)
    result = client.infer(batched, inputs)
    assert b"Paris" in result.as_numpy("text_output")[0][0]
    assert 1 <= result.as_numpy("completion_tokens")[0][0] <= 8
    # /metrics on the API port (the inference extension's picker) and, through the Service's
    # `metrics` port, on the runtime's metrics port (the ServiceMonitor's), which serves no API.
    for port in (8080, 8090):
        with urllib.request.urlopen(f"http://{smollm2.cluster_ip}:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        assert "vllm:num_requests_waiting" in text and "deepseek_requests_waiting" in text, port
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"http://{smollm2.cluster_ip}:8090/v1/models", timeout=30)
