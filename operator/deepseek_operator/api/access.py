"""Who reaches the pods and how: the Service, keys, TLS, allowed peers, the metrics scrape."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from deepseek_operator.api.schema import DNS_LABEL, DNS_SUBDOMAIN, Rule, Schema, bounded, matching


class ServiceSpec(Schema):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Service type."
    )
    port: int = bounded(8080, 1, 65535, "Port of the OpenAI-compatible API.")


class LabelSelector(Schema):
    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels to match.")


class Peer(Schema):
    """Who may connect: pods matching podSelector in namespaces matching namespaceSelector."""

    rules = (
        Rule(
            "has(self.namespaceSelector) || has(self.podSelector)",
            "set namespaceSelector, podSelector or both",
            lambda s: s.namespace_selector is not None or s.pod_selector is not None,
        ),
    )

    namespace_selector: LabelSelector | None = Field(None, description="Namespaces allowed.")
    pod_selector: LabelSelector | None = Field(None, description="Pods allowed.")


class SecretRef(Schema):
    secret_name: str = Field(
        description="Secret in the same namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )


class SecuritySpec(Schema):
    api_keys: SecretRef | None = Field(
        None,
        description="Secret with key api-keys.yaml: a list "
        "of {name, role, sha256}. Without it the API is open to "
        "whoever the NetworkPolicy lets in.",
    )
    tls: SecretRef | None = Field(
        None, description="kubernetes.io/tls Secret: the runtime serves HTTPS with it."
    )
    allow_from: list[Peer] = Field(
        default_factory=list,
        description="Who may connect. Empty means pods in the same namespace only.",
        max_length=32,
    )
    allow_egress_cidrs: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        description="Egress allowed besides DNS (default: none).",
        max_length=16,
    )


class MonitoringSpec(Schema):
    service_monitor: bool = Field(False, description="Create a prometheus-operator ServiceMonitor.")
    interval: str = Field("30s", description="Scrape interval.", pattern=r"^[0-9]+(s|m)$")
    namespace: str = matching(
        "monitoring", DNS_LABEL, 63, "Namespace whose Prometheus may scrape the metrics port."
    )
