"""The prometheus-operator ServiceMonitor that scrapes the runtime's /metrics on the Service's
`metrics` port: the one the NetworkPolicy opens to the monitoring namespace, not the API's."""

from __future__ import annotations

from typing import Any

from deepseek_operator.manifests.target import Target, child, selector_labels


def service_monitor(t: Target) -> dict[str, Any]:
    endpoint_spec: dict[str, Any] = {
        "port": "metrics",
        "path": "/metrics",
        "interval": t.spec.monitoring.interval,
        "scheme": t.scheme.lower(),
    }
    if t.spec.security.tls:
        endpoint_spec["tlsConfig"] = {"serverName": f"{t.name}.{t.namespace}.svc"}
    spec = {"selector": {"matchLabels": selector_labels(t.name)}, "endpoints": [endpoint_spec]}
    return child(t, ("monitoring.coreos.com/v1", "ServiceMonitor"), spec)
