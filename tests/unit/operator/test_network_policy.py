"""The NetworkPolicy's meaning, checked by evaluating it as Kubernetes does.

The local control plane has no CNI to enforce policies, so these tests evaluate the built
object with the NetworkPolicy semantics (selectors, peers, ports; AND within a peer, OR across
peers and rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from specs import cr

from deepseek_operator.api import parse_spec
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import Target, network_policy


@dataclass
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.namespace_labels.setdefault("kubernetes.io/metadata.name", self.namespace)


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def peer_matches(peer: dict[str, Any], policy_ns: str, other: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # pods are not addressed by CIDR here
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    in_namespace = (
        matches(ns_sel, other.namespace_labels)
        if ns_sel is not None
        else other.namespace == policy_ns
    )
    return in_namespace and (pod_sel is None or matches(pod_sel, other.labels))


def rules_allow(
    rules: list[dict[str, Any]], peers_key: str, policy_ns: str, other: Pod, port: int
) -> bool:
    """OR across rules; a rule without ports or peers allows every port or every peer."""
    for rule in rules:
        ports = rule.get("ports")
        if ports and all(p["port"] != port for p in ports):
            continue
        peers = rule.get(peers_key)
        if not peers or any(peer_matches(p, policy_ns, other) for p in peers):
            return True
    return False


def admits(policy: dict[str, Any], target: Pod, source: Pod, port: int) -> bool:
    spec = policy["spec"]
    if target.namespace != policy["metadata"]["namespace"] or not matches(
        spec["podSelector"], target.labels
    ):
        return True  # not selected: not isolated by this policy
    return rules_allow(spec.get("ingress") or [], "from", target.namespace, source, port)


def allows_egress(policy: dict[str, Any], source: Pod, dest: Pod, port: int) -> bool:
    return rules_allow(policy["spec"].get("egress") or [], "to", source.namespace, dest, port)


def build(**changes: Any) -> tuple[dict[str, Any], Pod]:
    spec = parse_spec(cr(**changes)["spec"])
    policy = network_policy(Target("r1", "ai", spec, plan_for_spec(spec)))
    model_pod = Pod("ai", dict(policy["spec"]["podSelector"]["matchLabels"]))
    return policy, model_pod


NEIGHBOUR = Pod("ai", {"app": "chat-ui"})
INTRUDER = Pod("internet-facing", {"app": "web"})
APPS = Pod("apps", {"app": "backend"}, {"team": "apps"})
PROMETHEUS = Pod("monitoring", {"app": "prometheus"})
DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def test_default_admits_only_the_same_namespace() -> None:
    policy, model = build()
    assert admits(policy, model, NEIGHBOUR, 8080)
    assert admits(policy, model, NEIGHBOUR, 8001)
    assert not admits(policy, model, INTRUDER, 8080)
    assert not admits(policy, model, APPS, 8080)


def test_allow_from_replaces_the_default() -> None:
    policy, model = build(
        security={"allowFrom": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}]}
    )
    assert admits(policy, model, APPS, 8080)
    assert not admits(policy, model, INTRUDER, 8080)
    assert not admits(policy, model, NEIGHBOUR, 8080)


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    policy, model = build(
        security={
            "allowFrom": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "apps"}},
                    "podSelector": {"matchLabels": {"app": "frontend"}},
                }
            ]
        }
    )
    assert not admits(policy, model, APPS, 8080)  # right namespace, wrong pod
    assert admits(policy, model, Pod("apps", {"app": "frontend"}, {"team": "apps"}), 8080)


def test_monitoring_reaches_metrics_ports_only() -> None:
    """The runtime's metrics port and Triton's, never the API ports (8080 serves /metrics too,
    but with it the whole OpenAI API)."""
    policy, model = build()
    assert admits(policy, model, PROMETHEUS, 8090)
    assert admits(policy, model, PROMETHEUS, 8002)
    for port in (8080, 8000, 8001):
        assert not admits(policy, model, PROMETHEUS, port), port


def test_egress_is_dns_only() -> None:
    policy, model = build()
    assert allows_egress(policy, model, DNS, 53)
    assert not allows_egress(policy, model, DNS, 443)
    assert not allows_egress(policy, model, INTRUDER, 443)
    assert not allows_egress(policy, model, NEIGHBOUR, 8080)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_keeps_strangers_out(example: Path) -> None:
    """Whatever an example allows, a pod in an unlisted namespace reaches no port of the model
    and the model reaches nothing outside DNS and the listed CIDRs."""
    doc = yaml.safe_load(example.read_text())
    spec = parse_spec(doc["spec"])
    policy = network_policy(Target("r1", "ai", spec, plan_for_spec(spec)))
    model = Pod("ai", dict(policy["spec"]["podSelector"]["matchLabels"]))
    for port in (8080, 8090, 8000, 8001, 8002):
        assert not admits(policy, model, INTRUDER, port), port
    assert not allows_egress(policy, model, INTRUDER, 443)
    cidrs = [r for r in policy["spec"]["egress"] if any("ipBlock" in p for p in r["to"])]
    assert [p["ipBlock"]["cidr"] for r in cidrs for p in r["to"]] == list(
        spec.security.allow_egress_cidrs
    )
