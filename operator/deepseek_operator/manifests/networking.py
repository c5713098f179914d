"""How the pods are reached: the Service (the pods that serve: a group's leader only), and a
NetworkPolicy that admits only the listed peers, and a group's pods to one another."""

from __future__ import annotations

from typing import Any

from deepseek_operator.manifests.target import (
    HTTP_PORT,
    METRICS_PORT,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    Target,
    child,
    selector_labels,
    serving_labels,
)


def service(t: Target) -> dict[str, Any]:
    ports = [
        {
            "name": "http",
            "port": t.spec.service.port,
            "targetPort": "http",
            "protocol": "TCP",
            "appProtocol": t.scheme.lower(),
        },
        {
            # What the ServiceMonitor scrapes, by name.
            "name": "metrics",
            "port": METRICS_PORT,
            "targetPort": "metrics",
            "protocol": "TCP",
            "appProtocol": t.scheme.lower(),
        },
        {
            "name": "triton-http",
            "port": TRITON_HTTP_PORT,
            "targetPort": "triton-http",
            "protocol": "TCP",
        },
        {
            "name": "triton-grpc",
            "port": TRITON_GRPC_PORT,
            "targetPort": "triton-grpc",
            "protocol": "TCP",
            "appProtocol": "grpc",
        },
    ]
    spec = {"type": t.spec.service.type, "selector": serving_labels(t), "ports": ports}
    return child(t, ("v1", "Service"), spec)


def network_policy(t: Target) -> dict[str, Any]:
    """Default deny: in from the listed peers only, out to DNS only."""
    security = t.spec.security
    api_ports = [
        {"protocol": "TCP", "port": p} for p in (HTTP_PORT, TRITON_HTTP_PORT, TRITON_GRPC_PORT)
    ]
    if security.allow_from:
        peers = [_peer(p.wire()) for p in security.allow_from]
    else:
        peers = [{"podSelector": {}}]  # the same namespace only
    monitoring = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": t.spec.monitoring.namespace}
        }
    }
    # The monitoring namespace gets the two metrics ports only, never the API: the runtime
    # serves /metrics alone on METRICS_PORT, Triton its own on TRITON_METRICS_PORT.
    ingress = [
        {"from": peers, "ports": api_ports},
        {
            "from": [monitoring],
            "ports": [
                {"protocol": "TCP", "port": METRICS_PORT},
                {"protocol": "TCP", "port": TRITON_METRICS_PORT},
            ],
        },
    ]
    dns = {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    egress = [dns]
    if security.allow_egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in security.allow_egress_cidrs]})
    if t.nodes > 1:
        # The ranks of a group: the rendezvous on the leader, then NCCL's own connections on
        # ports it picks, between every pair of the group's pods.
        ingress.append({"from": [{"podSelector": {"matchLabels": selector_labels(t.name)}}]})
        egress.append({"to": [{"podSelector": {"matchLabels": selector_labels(t.name)}}]})
    spec = {
        "podSelector": {"matchLabels": selector_labels(t.name)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return child(t, ("networking.k8s.io/v1", "NetworkPolicy"), spec)


def _peer(peer: dict[str, Any]) -> dict[str, Any]:
    return {k: {"matchLabels": v.get("matchLabels", {})} for k, v in peer.items()}
