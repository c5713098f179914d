"""The OpenAI door of a real server process (tiny DeepseekV3) with the official `openai` client."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from devkit.runtime_server import KEYS, RuntimeServer, auth

pytestmark = pytest.mark.runtime

MODEL = "tiny-deepseek"


def client(server: RuntimeServer, role: str = "inference") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url("/v1"), api_key=KEYS[role], max_retries=0)


def metric(server: RuntimeServer, name: str, labels: str = "", url: str | None = None) -> float:
    """A sample from /metrics on the API port, or at ``url`` (the metrics port's)."""
    text = httpx.get(url or server.url("/metrics"), timeout=10).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_models(api_server: RuntimeServer) -> None:
    models = client(api_server).models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_chat(api_server: RuntimeServer) -> None:
    reply = client(api_server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}], max_tokens=12,
        temperature=0,
    )  # fmt: skip
    choice = reply.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 3
    assert 0 < reply.usage.completion_tokens <= 12


def test_chat_stream_with_usage(api_server: RuntimeServer) -> None:
    stream = client(api_server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count"}], max_tokens=20,
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20


def test_completions_whole_and_streamed_agree_greedily(api_server: RuntimeServer) -> None:
    c = client(api_server)
    args: dict[str, Any] = {"model": MODEL, "prompt": "The capital of", "max_tokens": 10,
                            "temperature": 0, "extra_body": {"ignore_eos": True}}  # fmt: skip
    whole = c.completions.create(**args)
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(**args, stream=True))
    assert whole.choices[0].text == streamed
    assert whole.usage is not None and whole.usage.completion_tokens == 10


def test_unknown_model_and_bad_requests(api_server: RuntimeServer) -> None:
    c = client(api_server)
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="gpt-9", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="context"):
        c.completions.create(model=MODEL, prompt="word " * 400, max_tokens=1)
    with pytest.raises(openai.BadRequestError, match="n=1"):
        c.completions.create(model=MODEL, prompt="x", max_tokens=1, n=2)


def test_the_max_tokens_policy(api_server: RuntimeServer) -> None:
    """One policy on both doors (the Triton half is in test_triton_server.py): an explicit
    max_tokens that cannot fit is a 400 naming the numbers; none means the rest of the context,
    at most --default-max-tokens (12 on this server)."""
    c = client(api_server)
    with pytest.raises(openai.BadRequestError, match=r"context is 256 tokens, but \d+ prompt "
                       r"tokens plus max_tokens=300 need \d+"):  # fmt: skip
        c.completions.create(model=MODEL, prompt="Hi", max_tokens=300)
    with pytest.raises(openai.BadRequestError, match="max_tokens=300"):
        c.chat.completions.create(model=MODEL, max_tokens=300,
                                  messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
    extra = {"ignore_eos": True}
    whole = c.completions.create(model=MODEL, prompt="Hi", extra_body=extra)
    chat = c.chat.completions.create(model=MODEL, extra_body=extra,
                                     messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
    assert whole.usage is not None and chat.usage is not None
    assert whole.usage.completion_tokens == chat.usage.completion_tokens == 12
    near_the_end = c.completions.create(model=MODEL, prompt=[5] * 250, extra_body=extra)
    assert near_the_end.usage is not None and near_the_end.usage.completion_tokens == 6
    assert near_the_end.choices[0].finish_reason == "length"


def test_401_403(api_server: RuntimeServer) -> None:
    ask = {"model": MODEL, "prompt": "x", "max_tokens": 1}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api_server.url("/v1"), api_key="wrong", max_retries=0
                      ).completions.create(**ask)  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError, match="auditor"):
        client(api_server, "auditor").completions.create(**ask)
    r = httpx.post(api_server.url("/v1/completions"), json=ask)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_key"
    assert httpx.get(api_server.url("/v1/audit"), headers=auth("inference")).status_code == 403


def test_audit_log_has_fields_but_no_text(api_server: RuntimeServer) -> None:
    marker = "zebra-quartz-marker"
    client(api_server, "admin").completions.create(model=MODEL, prompt=marker, max_tokens=3)
    records = httpx.get(api_server.url("/v1/audit?limit=50"), headers=auth("auditor")).json()
    mine = [r for r in records["data"] if r["key"] == "admin-key"][-1]
    assert mine["endpoint"] == "/v1/completions" and mine["status"] == 200
    assert mine["role"] == "admin" and mine["model"] == MODEL
    assert mine["completion_tokens"] == 3 and mine["prompt_tokens"] > 0
    assert mine["client"] == "127.0.0.1" and mine["latency_s"] > 0 and mine["time"]
    raw = api_server.extra["audit_log"].read_text()
    assert marker not in raw
    assert all(json.loads(line) for line in raw.splitlines())


def wait_idle(server: RuntimeServer, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if metric(server, "deepseek_requests_running") == 0 and metric(
            server, "deepseek_requests_waiting") == 0:  # fmt: skip
            return
        time.sleep(0.05)
    raise AssertionError("the engine did not go idle")


def test_client_disconnect_mid_stream_frees_its_slot(api_server: RuntimeServer) -> None:
    wait_idle(api_server)
    aborted = metric(api_server, "deepseek_requests_finished_total", '{finish_reason="abort"}')
    body = {"model": MODEL, "prompt": "Go", "max_tokens": 240, "ignore_eos": True,
            "stream": True}  # fmt: skip
    with httpx.stream("POST", api_server.url("/v1/completions"), json=body,
                      headers=auth("inference"), timeout=30) as r:  # fmt: skip
        assert r.status_code == 200
        next(r.iter_lines())  # one event arrived; now hang up
    wait_idle(api_server, 10)
    after = metric(api_server, "deepseek_requests_finished_total", '{finish_reason="abort"}')
    assert after == aborted + 1  # the engine aborted it rather than generating all 240


# Ours, and the vLLM names the Gateway API Inference Extension's endpoint picker reads.
LOAD_GAUGES = {
    "waiting": ("deepseek_requests_waiting", ""),
    "running": ("deepseek_requests_running", ""),
    "vllm waiting": ("vllm:num_requests_waiting", f'{{model_name="{MODEL}"}}'),
    "vllm running": ("vllm:num_requests_running", f'{{model_name="{MODEL}"}}'),
    "vllm kv": ("vllm:kv_cache_usage_perc", f'{{model_name="{MODEL}"}}'),
}


def test_queue_gauge_rises_under_load_and_returns_to_zero(api_server: RuntimeServer) -> None:
    wait_idle(api_server)
    body = {"model": MODEL, "prompt": "Load", "max_tokens": 96, "ignore_eos": True}
    peak = dict.fromkeys(LOAD_GAUGES, 0.0)
    done = threading.Event()

    def sample() -> None:
        # The HPA's gauges from the metrics port (what Prometheus scrapes), the endpoint
        # picker's vLLM ones from the API port (what it scrapes): both move with the load.
        while not done.is_set():
            for key, (name, labels) in LOAD_GAUGES.items():
                url = None if key.startswith("vllm") else api_server.metrics_url
                peak[key] = max(peak[key], metric(api_server, name, labels, url))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: httpx.post(
            api_server.url("/v1/completions"), json=body, headers=auth("inference"), timeout=120
        ).status_code, range(16)))  # fmt: skip
    done.set()
    sampler.join()
    assert statuses == [200] * 16
    assert peak["running"] == peak["vllm running"] == 2, peak  # --max-num-seqs 2
    assert peak["waiting"] >= 4 and peak["vllm waiting"] >= 4, peak
    assert 0 < peak["vllm kv"] <= 1, peak
    wait_idle(api_server, 5)
    assert metric(api_server, *LOAD_GAUGES["vllm waiting"]) == 0
    assert metric(api_server, *LOAD_GAUGES["vllm running"]) == 0


def test_the_metrics_port_serves_metrics_alone(api_server: RuntimeServer) -> None:
    scrape = httpx.get(api_server.metrics_url, timeout=10)
    assert scrape.status_code == 200 and "deepseek_requests_waiting" in scrape.text
    assert "vllm:num_requests_waiting" in scrape.text
    base = f"http://127.0.0.1:{api_server.metrics}"
    key = auth("admin")
    for path in ("/v1/models", "/health", "/ready", "/openapi.json", "/v1/audit"):
        assert httpx.get(base + path, headers=key, timeout=10).status_code == 404, path
    body = {"model": MODEL, "prompt": "x", "max_tokens": 1}
    refused = httpx.post(base + "/v1/completions", json=body, headers=key, timeout=10)
    assert refused.status_code == 404
    # The same registry as the API port's: a counter that only the API port moves shows there.
    answered = '{finish_reason="length"}'
    before = metric(api_server, "deepseek_requests_finished_total", answered, base + "/metrics")
    client(api_server).completions.create(
        model=MODEL, prompt="x", max_tokens=1, extra_body={"ignore_eos": True}
    )
    after = metric(api_server, "deepseek_requests_finished_total", answered, base + "/metrics")
    assert after == before + 1


def test_queue_full_is_429_with_retry_after(api_server: RuntimeServer) -> None:
    wait_idle(api_server)
    body = {"model": MODEL, "prompt": "Flood", "max_tokens": 48, "ignore_eos": True}
    with ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(lambda _: httpx.post(
            api_server.url("/v1/completions"), json=body, headers=auth("inference"), timeout=120
        ), range(40)))  # fmt: skip
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    assert all(r.headers["retry-after"].isdigit() for r in refused)
    assert refused[0].json()["error"]["code"] == "queue_full"
    assert {r.status_code for r in responses} <= {200, 429}
    wait_idle(api_server)
