"""The two HTTP ports of one server: the OpenAI port serves everything, the metrics port
/metrics alone; each request goes to the application of the port it reached."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from deepseek_runtime.doors.services import Services
from deepseek_runtime.guards.keys import Guard, Principal, RateLimiter, Role, hash_key
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.server.listeners import Listeners, bound_port
from deepseek_runtime.server.startup import StartupError
from deepseek_runtime.settings import ServerSettings


def services(**settings: object) -> Services:
    keys = {hash_key("sk-aud"): Principal("aud", Role("auditor"))}
    guard = Guard(keys if settings.get("metrics_auth") else None, RateLimiter(10.0, 20))
    return Services(
        ServerSettings.model_validate(settings), guard, RuntimeMetrics(), OutputFilter([], 16)
    )


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    bound = Listeners("127.0.0.1", 0, 0)
    yield bound
    bound.close()


def clients(listeners: Listeners, svc: Services) -> tuple[TestClient, TestClient]:
    """(the OpenAI port, the metrics port), as requests arriving on each bound port."""
    app = listeners.app(svc)
    api = TestClient(app, base_url=f"http://127.0.0.1:{bound_port(listeners.api)}")
    metrics = TestClient(app, base_url=f"http://127.0.0.1:{bound_port(listeners.metrics)}")
    return api, metrics


def test_the_metrics_port_serves_the_same_registry_and_nothing_else(listeners: Listeners) -> None:
    svc = services()
    api, metrics = clients(listeners, svc)
    svc.metrics.rate_limited.labels("openai").inc(3)  # one registry: seen on both ports
    for client in (api, metrics):
        scrape = client.get("/metrics")
        assert scrape.status_code == 200, scrape.text
        assert 'deepseek_rate_limited_total{door="openai"} 3.0' in scrape.text
        assert "vllm:num_requests_waiting" in scrape.text
    assert api.get("/health").status_code == 200
    for path in ("/health", "/ready", "/v1/models", "/openapi.json", "/v1/audit"):
        assert metrics.get(path).status_code == 404, path
    assert metrics.post("/v1/chat/completions", json={}).status_code == 404
    # The scrapes were counted like any request, under the one /metrics label.
    text = metrics.get("/metrics").text
    count = re.search(
        r'deepseek_http_requests_total\{endpoint="/metrics",status="200"\} (\S+)', text
    )
    assert count is not None and float(count.group(1)) >= 2


def test_metrics_auth_holds_on_the_metrics_port(listeners: Listeners) -> None:
    svc = services(metrics_auth=True, api_keys="keys.yaml")
    _, metrics = clients(listeners, svc)
    assert metrics.get("/metrics").status_code == 401
    scrape = metrics.get("/metrics", headers={"authorization": "Bearer sk-aud"})
    assert scrape.status_code == 200 and "deepseek_requests_waiting" in scrape.text


def test_a_taken_metrics_port_stops_the_start_naming_its_flag() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = bound_port(taken)
        with pytest.raises(StartupError, match=rf"127\.0\.0\.1:{port} \(--metrics-port\)"):
            Listeners("127.0.0.1", 0, port)
        with pytest.raises(StartupError, match=rf"127\.0\.0\.1:{port} \(--port\)"):
            Listeners("127.0.0.1", port, 0)
