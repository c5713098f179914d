"""hack/localcluster/metrics.py without starting anything: the adapter gets the chart's own rules,
Prometheus keeps the targets the chart's ServiceMonitor selects, and the adapter's certificate
verifies for the name the aggregator checks."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
import yaml
from localcluster import config, metrics
from localcluster.metrics_pki import write_adapter_certificate
from localcluster.pki import write_certificates

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "deepseek-operator"


def helm_binary() -> Path:
    helm = config.control_plane_bin() / "helm"
    if not os.access(helm, os.X_OK):
        pytest.fail(f"{helm} is missing: run `make control-plane`", pytrace=False)
    return helm


def test_adapter_rules_are_the_charts_rendered_rules() -> None:
    rules = yaml.safe_load(metrics.adapter_rules(helm_binary()))["rules"]
    names = [rule["name"]["as"] for rule in rules]
    assert "deepseek_requests_waiting" in names  # the HPA's queue metric
    template = (CHART / "templates" / "prometheus-adapter-rules.yaml").read_text()
    for rule in rules:
        assert rule["seriesQuery"] in template  # rendered from the chart, not a copy


def test_block_scalar_stops_at_the_next_key_and_names_a_missing_one() -> None:
    document = "data:\n  config.yaml: |\n    rules:\n      - a: 1\n\n    more: 2\n  other: x\n"
    assert metrics.block_scalar(document, "config.yaml") == "rules:\n  - a: 1\n\nmore: 2\n"
    with pytest.raises(config.ClusterError, match=re.escape("no `absent: |` block")):
        metrics.block_scalar(document, "absent")


def test_prometheus_keeps_what_the_service_monitor_selects(tmp_path: Path) -> None:
    values = metrics.chart_values(helm_binary())
    text = metrics.prometheus_config(
        "https://10.244.0.1:6443", tmp_path / "ca.crt", tmp_path / "token", values["port"],
        values["path"],
    )  # fmt: skip
    job = json.loads(text)["scrape_configs"][0]
    assert job["metrics_path"] == values["path"] == "/metrics"
    monitor = (CHART / "templates" / "servicemonitor.yaml").read_text()
    keeps = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action")}
    for key, value in metrics.RUNTIME_SERVICE_LABELS.items():
        assert f"{key}: {value}" in monitor  # the ServiceMonitor's own selector
        assert keeps[f"__meta_kubernetes_service_label_{metrics.label_name(key)}"] == value
    assert keeps["__meta_kubernetes_endpointslice_port_name"] == values["port"] == "metrics"
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    # What the adapter's rules (namespace, pod) and KEDA's query (service) read.
    assert {"namespace", "pod", "service"} <= targets


def test_adapter_certificate_verifies_for_the_service_name(tmp_path: Path) -> None:
    write_certificates(tmp_path)
    name = "prometheus-adapter.monitoring.svc"
    cert, key = write_adapter_certificate(tmp_path, tmp_path, name, "127.0.0.1")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.getpeercert()
        thread.join(timeout=10)
