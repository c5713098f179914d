"""The NetworkPolicy the operator writes, enforced on the real node (kube-router's firewall
controller, hack/localcluster/netpol.py) and proven from real pods: an unlisted namespace cannot
reach the model port, a listed one can; the monitoring namespace reaches the metrics ports (the
runtime's /metrics-only port and Triton's) and nothing else, not even the OpenAI port's own
/metrics; the runtime pod opens nothing but DNS. Then the test widens the policy through the
DeepSeekDeployment (the operator would undo any edit made to the NetworkPolicy itself) and watches
every denial turn into a connection, so these checks are known to fail when the policy does not
hold; narrowed again, the denials come back.

Every destination is a pod the test made or a listener on the bridge's own address: no connection
ever leaves this machine, not even to prove a denial.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clusterkit import Kubectl, make_namespace, release_namespace, wait_until
from netprobe import DNS_PORT, OTHER_PORT, Endpoint, bridge_listener, start_probes
from realnode import RealOperator, Served, node_images

# The first test here may install the operator pod and wait for the model to load.
pytestmark = pytest.mark.timeout(1200)

NODE_IP = "10.244.0.1"  # the bridge's own address (hack/localcluster/config.py)
API_PORTS = (8080, 8000, 8001)  # OpenAI (its /metrics too), Triton HTTP, Triton gRPC
METRICS = 8090  # the runtime's metrics port: /metrics alone
TRITON_METRICS = 8002
PEER_LABEL = "deepseek.ai/np-peer"
SYNC_TIMEOUT = 90.0  # the agent re-syncs on every policy, pod and namespace event
# What the Gateway API Inference Extension's endpoint picker reads from a vLLM-labelled pod.
PICKER_GAUGES = {
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
}


@dataclass(frozen=True)
class Lab:
    runtime: Endpoint  # the served model's pod
    allowed: Endpoint  # a pod in a namespace the policy lists
    unlisted: Endpoint  # a pod in a namespace it does not
    dns: Endpoint  # labelled k8s-app=kube-dns, like a cluster DNS pod (in the unlisted namespace)
    monitoring: Endpoint  # a pod in the CR's monitoring namespace
    bridge: str  # host:port of a listener on the bridge address
    cr: Kubectl  # the DeepSeekDeployment's namespace
    spec: dict[str, Any]  # the access part of the CR's spec while the lab runs

    def api(self, *ports: int) -> list[str]:
        return [f"{self.runtime.ip}:{port}" for port in ports]


def patch_spec(ns: Kubectl, name: str, spec: dict[str, Any]) -> None:
    ns("patch", "dsd", name, "--type=merge", "-p", json.dumps({"spec": spec}))


def wait_policy(ns: Kubectl, name: str, check: Any, what: str) -> None:
    """Until the operator has written the NetworkPolicy the spec asks for."""
    wait_until(lambda: (p := ns.get("networkpolicy", name)) and check(p["spec"]), 60, what)


def running_pod(ns: Kubectl, name: str) -> dict[str, Any]:
    pods = ns.items("pods", f"app.kubernetes.io/instance={name}")
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return running[0]


def open_(outcome: Any) -> bool:
    return outcome == "open" or (isinstance(outcome, dict) and outcome.get("status") == 200)


def wait_open(source: Endpoint, targets: list[str], what: str) -> dict[str, Any]:
    """Connections the policy allows come up once the agent has synced it."""

    def all_open() -> dict[str, Any] | None:
        outcome = source.connect(*targets)
        return outcome if all(open_(v) for v in outcome.values()) else None

    return wait_until(all_open, SYNC_TIMEOUT, what, interval=2)


def assert_denied(source: Endpoint, targets: list[str]) -> None:
    outcome = source.connect(*targets)
    print(f"denied from {source.name}: {outcome}")  # the reason each one failed, for the log
    assert not any(open_(v) for v in outcome.values()), f"from {source.name}: {outcome}"


@pytest.fixture(scope="module")
def lab(
    cluster: Any, kubectl: Kubectl, real_operator: RealOperator, smollm2: Served
) -> Iterator[Lab]:
    image = node_images(cluster.run_dir)["runtime"]
    token = secrets.token_hex(4)
    allowed_ns = make_namespace(kubectl, "np-allowed")
    kubectl("label", "namespace", allowed_ns, f"{PEER_LABEL}={token}")
    unlisted_ns = make_namespace(kubectl, "np-unlisted")
    monitoring_ns = make_namespace(kubectl, "np-monitoring")
    cr = kubectl.ns(smollm2.namespace)
    before = smollm2.cr["spec"]
    restore = {
        "security": {
            key: before.get("security", {}).get(key) for key in ("allowFrom", "allowEgressCidrs")
        },
        "monitoring": {"namespace": before.get("monitoring", {}).get("namespace")},
    }
    spec = {
        "security": {"allowFrom": [{"namespaceSelector": {"matchLabels": {PEER_LABEL: token}}}]},
        "monitoring": {"namespace": monitoring_ns},
    }
    try:
        patch_spec(cr, smollm2.name, spec)
        probes = {
            **start_probes(kubectl.ns(allowed_ns), image, {"allowed": {}}),
            **start_probes(
                kubectl.ns(unlisted_ns), image, {"unlisted": {}, "dns": {"k8s-app": "kube-dns"}}
            ),
            **start_probes(kubectl.ns(monitoring_ns), image, {"monitoring": {}}),
        }
        wait_policy(
            cr, smollm2.name,
            lambda p: monitoring_ns in json.dumps(p) and token in json.dumps(p),
            "the NetworkPolicy with the listed namespace and the monitoring namespace",
        )  # fmt: skip
        pod = running_pod(cr, smollm2.name)  # the one serving now (the session's may be gone)
        runtime = Endpoint(cr, pod["metadata"]["name"], "runtime", pod["status"]["podIP"])
        with bridge_listener(NODE_IP) as port:
            yield Lab(runtime, bridge=f"{NODE_IP}:{port}", cr=cr, spec=spec, **probes)
    finally:
        patch_spec(cr, smollm2.name, restore)
        for namespace in (allowed_ns, unlisted_ns, monitoring_ns):
            release_namespace(kubectl, namespace)


def test_listed_namespace_reaches_the_model(lab: Lab) -> None:
    outcome = wait_open(
        lab.allowed, [f"{lab.runtime.ip}:8080/v1/models", *lab.api(8000, 8001)],
        "the listed namespace's pod to reach the runtime's API ports",
    )  # fmt: skip
    assert outcome[f"{lab.runtime.ip}:8080/v1/models"]["status"] == 200


def test_unlisted_namespace_cannot_reach_the_model(lab: Lab) -> None:
    wait_open(lab.allowed, lab.api(8080), "the policy in force (the listed pod gets through)")
    assert_denied(lab.unlisted, lab.api(*API_PORTS, METRICS, TRITON_METRICS))
    # The same pod reaches other pods: what stops it is the runtime's policy, not its network.
    wait_open(lab.unlisted, [f"{lab.allowed.ip}:{OTHER_PORT}"], "the unlisted pod's network")


def test_monitoring_reaches_the_metrics_ports_and_nothing_else(lab: Lab) -> None:
    scrape = f"{lab.runtime.ip}:{METRICS}/metrics"
    outcome = wait_open(
        lab.monitoring, [scrape, *lab.api(TRITON_METRICS)],
        "the monitoring namespace to scrape the metrics ports",
    )  # fmt: skip
    # The scrape carries the gauges the inference extension's picker reads, from a pod that
    # carries its engine-type label.
    assert set(outcome[scrape]["vllm"]) >= PICKER_GAUGES, outcome[scrape]
    pod = lab.cr.get("pod", lab.runtime.name) or {}
    assert pod["metadata"]["labels"]["inference.networking.k8s.io/engine-type"] == "vllm"
    # Not the API: neither its port's /metrics nor a model call, nor Triton's API ports.
    assert_denied(lab.monitoring, [f"{lab.runtime.ip}:8080/metrics", *lab.api(*API_PORTS)])


def test_runtime_opens_nothing_but_dns(lab: Lab) -> None:
    dns, other = f"{lab.dns.ip}:{DNS_PORT}", f"{lab.dns.ip}:{OTHER_PORT}"
    not_dns = f"{lab.allowed.ip}:{DNS_PORT}"  # port 53 on a pod that is not labelled kube-dns
    # Every destination listens: a pod without a policy reaches them all.
    wait_open(lab.unlisted, [dns, other, not_dns, lab.bridge], "the listeners")
    wait_open(lab.runtime, [dns], "the runtime pod to reach DNS")
    assert_denied(lab.runtime, [other, not_dns, lab.bridge])


def test_a_widened_policy_lets_the_denied_traffic_through(lab: Lab, smollm2: Served) -> None:
    """The proof can fail: with every namespace listed and egress opened to the node's range,
    each connection denied above gets through; narrowed back, they are denied again."""
    denied = [
        (lab.unlisted, lab.api(*API_PORTS)),
        (lab.monitoring, lab.api(*API_PORTS)),
        (lab.runtime, [f"{lab.dns.ip}:{OTHER_PORT}", f"{lab.allowed.ip}:{DNS_PORT}", lab.bridge]),
    ]
    wide = {
        "security": {
            "allowFrom": [{"namespaceSelector": {}}],
            "allowEgressCidrs": ["10.244.0.0/24"],
        }
    }
    patch_spec(lab.cr, smollm2.name, wide)
    try:
        wait_policy(
            lab.cr, smollm2.name, lambda p: "10.244.0.0/24" in json.dumps(p), "the widened policy"
        )
        for source, targets in denied:
            wait_open(source, targets, f"{source.name}'s denied connections under a wide policy")
    finally:
        patch_spec(
            lab.cr, smollm2.name, {"security": {**lab.spec["security"], "allowEgressCidrs": None}}
        )
    wait_policy(
        lab.cr, smollm2.name, lambda p: "10.244.0.0/24" not in json.dumps(p), "the narrow policy"
    )

    def denied_again() -> bool:
        return all(not any(open_(v) for v in s.connect(*t).values()) for s, t in denied)

    wait_until(denied_again, SYNC_TIMEOUT, "the denials to come back", interval=2)
