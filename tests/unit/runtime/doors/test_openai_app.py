"""The OpenAI app in-process over the fake engine: formats, errors, auth, audit, metrics.

These run in about a second. The fake engine re-implements stop strings, EOS and max_tokens,
so tests/runtime/test_openai_real_engine.py proves each of those (and usage, and the output
filter) again over the real engine, and the runtime suite runs the important paths on real
server processes with the official clients.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from deepseek_runtime.doors.openai.app import build_app
from deepseek_runtime.doors.services import Services
from deepseek_runtime.guards.audit import AuditLog
from deepseek_runtime.guards.keys import (
    Guard,
    Principal,
    RateLimiter,
    Role,
    hash_key,
    load_api_keys,
)
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.settings import ServerSettings

Factory = Callable[..., tuple[TestClient, Services, FakeEngine]]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Factory]:
    clients: list[TestClient] = []

    def factory(
        reply: Callable[[str], str] | None = None, *, keys: bool = False, loaded: bool = True,
        filters: tuple[str, ...] = (), audit: bool = False, **engine_kw: Any,
    ) -> tuple[TestClient, Services, FakeEngine]:  # fmt: skip
        engine = FakeEngine(reply, **engine_kw) if reply else FakeEngine(**engine_kw)
        settings = ServerSettings(reasoning="auto", max_body_bytes=4096)
        key_map = None
        if keys:
            key_map = {
                hash_key(k): Principal(name, Role(role))
                for name, role, k in [("app", "inference", "sk-app"), ("aud", "auditor", "sk-aud")]
            }
        svc = Services(
            settings, Guard(key_map, RateLimiter(1.0, 3)), RuntimeMetrics(),
            OutputFilter([re.compile(f) for f in filters], holdback=16),
            AuditLog(tmp_path / "audit.log") if audit else None,
        )  # fmt: skip
        engine.observer = svc.metrics
        if loaded:
            svc.attach(engine)
            svc.ready = True
        client = TestClient(build_app(svc), raise_server_exceptions=False)
        clients.append(client)
        return client, svc, engine

    yield factory
    for c in clients:
        c.close()


def sse(text: str) -> list[Any]:
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def assert_error(response: Any, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def test_completion_whole_and_usage(make: Factory) -> None:
    client, _, engine = make()
    r = client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 50, "stop": "!"})
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "You said: hello"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 15, "total_tokens": 21}
    assert engine.submitted[-1].params.stop == ("!",)


def test_no_max_tokens_leaves_the_policy_to_the_engine(make: Factory) -> None:
    """Completions and chat pass what the client asked for, or None: one policy, the engine's
    (tests/runtime/test_openai_server.py checks its numbers through both doors)."""
    client, _, engine = make(lambda p: "x" * 100)
    body = client.post("/v1/completions", json={"prompt": "hi"}).json()
    assert engine.submitted[-1].params.max_tokens is None
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 64  # the fake engine's default_max_tokens
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert engine.submitted[-1].params.max_tokens is None
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                              "max_completion_tokens": 3})  # fmt: skip
    assert engine.submitted[-1].params.max_tokens == 3


def test_chat_stream_with_usage(make: Factory) -> None:
    client, _, _ = make()
    r = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hey"}], "stream": True,
        "stream_options": {"include_usage": True}})  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text == "You said: hey"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 13


def test_reasoning_split_whole_and_streamed(make: Factory) -> None:
    client, svc, _ = make(lambda p: "<think>Paris is in France.</think>\n\nParis.",
                          think_tags=True)  # fmt: skip
    assert svc.reasoning
    chat = {"messages": [{"role": "user", "content": "capital?"}]}
    message = client.post("/v1/chat/completions", json=chat).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Paris.",
                       "reasoning_content": "Paris is in France."}  # fmt: skip
    events = sse(client.post("/v1/chat/completions", json={**chat, "stream": True}).text)
    deltas = [e["choices"][0]["delta"] for e in events]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Paris is in France."
    assert "".join(d.get("content", "") for d in deltas) == "Paris."


def test_output_filter_ends_with_content_filter(make: Factory) -> None:
    client, _svc, engine = make(lambda p: "the password is hunter2, keep it", filters=["hunter\\d"])
    body = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 100}).json()
    assert body["choices"][0] == {"index": 0, "text": "the password is ", "logprobs": None,
                                  "finish_reason": "content_filter"}  # fmt: skip
    events = sse(client.post("/v1/completions", json={"prompt": "x", "max_tokens": 100,
                                                      "stream": True}).text)  # fmt: skip
    assert "".join(e["choices"][0]["text"] for e in events) == "the password is "
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter"
    metrics = client.get("/metrics").text
    assert 'deepseek_content_filter_total{door="openai"} 2.0' in metrics
    assert 'deepseek_requests_finished_total{finish_reason="content_filter"} 2.0' in metrics
    assert engine.aborted == 2  # the engine stopped generating at the match


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", {"prompt": "x", "model": "other"}, 404, "model"),
        ("/v1/completions", {"prompt": "x" * 600}, 400, None),
        ("/v1/completions", {"prompt": "x", "max_tokens": 600}, 400, None),
        ("/v1/completions", {"prompt": "x", "n": 3}, 400, "n"),
        ("/v1/completions", {"prompt": [99999999]}, 400, "prompt"),
        ("/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
    ],
)
def test_bad_requests_are_4xx_json(
    make: Factory, path: str, body: dict, status: int, param: str | None
) -> None:
    client, _, _ = make()
    assert_error(client.post(path, json=body), status, param)


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", "empty"), (b"{bad", "not valid JSON"), (b"[1]", "JSON object"),
     (b'{"prompt": NaN}', "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
     (b"[" * 4000, "not valid JSON")],
)  # fmt: skip
def test_malformed_bodies(make: Factory, raw: bytes, words: str) -> None:
    client, _, _ = make()
    err = assert_error(client.post("/v1/completions", content=raw), 400)
    assert words in err["message"]


def test_an_engine_failure_is_a_json_500_or_an_error_event(make: Factory) -> None:
    client, _, _ = make(fail_after=3)
    err = assert_error(client.post("/v1/completions", json={"prompt": "x"}), 500)
    assert "runner crashed" in err["message"]
    r = client.post("/v1/completions", json={"prompt": "x", "stream": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "You"
    assert "runner crashed" in events[-1]["error"]["message"]
    assert client.get("/health").status_code == 200


def test_body_too_large_and_unknown_routes(make: Factory) -> None:
    client, _, _ = make()
    assert_error(client.post("/v1/completions", content=b"x" * 5000), 413)
    assert_error(client.get("/v1/nothing"), 404)
    r = client.delete("/v1/completions")
    assert_error(r, 405)
    assert "POST" in r.headers["allow"]


def test_queue_full_is_429_with_retry_after(make: Factory) -> None:
    client, _, _ = make(max_queue=0)
    r = client.post("/v1/completions", json={"prompt": "x"})
    assert_error(r, 429)
    assert r.headers["retry-after"] == "1"


def test_503_and_not_ready_until_the_model_is_in(make: Factory) -> None:
    client, _, _ = make(loaded=False)
    assert client.get("/health").status_code == 200
    assert_error(client.get("/ready"), 503)
    assert_error(client.post("/v1/completions", json={"prompt": "x"}), 503)


def test_keys_roles_and_rate_limit(make: Factory) -> None:
    client, _, _ = make(keys=True)
    ask = {"prompt": "x", "max_tokens": 2}
    r = client.post("/v1/completions", json=ask)
    assert_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(client.post("/v1/completions", json=ask, headers={"Authorization": "Bearer no"}),
                 401)  # fmt: skip
    aud = {"Authorization": "Bearer sk-aud"}
    assert_error(client.post("/v1/completions", json=ask, headers=aud), 403)
    assert client.get("/v1/models", headers=aud).status_code == 200
    app = {"Authorization": "Bearer sk-app"}
    assert_error(client.get("/v1/audit", headers=app), 403)
    statuses = [client.post("/v1/completions", json=ask, headers=app).status_code
                for _ in range(4)]  # fmt: skip
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    assert client.get("/health").status_code == 200  # probes stay open
    assert client.get("/metrics").status_code == 200  # open unless --metrics-auth
    metrics = client.get("/metrics").text
    assert 'deepseek_rate_limited_total{door="openai"}' in metrics


def test_the_key_files_digest_is_what_admits_a_key(tmp_path: Path) -> None:
    """The broken half of "API keys": the same key, with a keys file holding its digest, is
    admitted; with a file whose digest is another key's (a wrong Secret), it is refused."""

    def status(digest_of: str) -> int:
        keys = tmp_path / f"keys-{digest_of}.yaml"
        keys.write_text(f"- {{name: app, role: inference, sha256: '{hash_key(digest_of)}'}}\n")
        engine = FakeEngine()
        svc = Services(ServerSettings(), Guard(load_api_keys(keys), None), RuntimeMetrics(),
                       OutputFilter([]))  # fmt: skip
        svc.attach(engine)
        svc.ready = True
        with TestClient(build_app(svc)) as client:
            return client.post("/v1/completions", json={"prompt": "x", "max_tokens": 1},
                               headers={"Authorization": "Bearer sk-app"}).status_code  # fmt: skip

    assert status("sk-app") == 200
    assert status("sk-other") == 401


def test_audit_lines(make: Factory) -> None:
    client, svc, _ = make(audit=True)
    client.post("/v1/completions", json={"prompt": "top secret", "max_tokens": 4})
    client.post("/v1/completions", json={"prompt": "x", "n": 2})
    records = client.get("/v1/audit").json()["data"]
    ok, bad = records[-2:]
    assert ok["endpoint"] == "/v1/completions" and ok["status"] == 200
    assert (ok["prompt_tokens"], ok["completion_tokens"], ok["model"]) == (11, 4, "fake-model")
    assert bad["status"] == 400
    assert svc.audit is not None and "top secret" not in svc.audit.path.read_text()
    assert_error(client.get("/v1/audit?limit=0"), 400, "limit")
    assert_error(client.get("/v1/audit?limit=1001"), 400, "limit")
    assert_error(client.get("/v1/audit?cursor=nope"), 400, "cursor")


def test_audit_pages_by_cursor_off_the_event_loop(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, item 12: a page is read in a worker thread, never on the loop that streams."""
    client, svc, _ = make(audit=True)
    for i in range(5):
        client.post("/v1/completions", json={"prompt": f"p{i}", "max_tokens": 1})
    assert svc.audit is not None
    read_page = svc.audit.read_page
    threads: list[bool] = []

    def spy(limit: int, cursor: str | None = None) -> Any:
        try:
            asyncio.get_running_loop()
            threads.append(False)  # called on an event loop
        except RuntimeError:
            threads.append(True)
        return read_page(limit, cursor)

    monkeypatch.setattr(svc.audit, "read_page", spy)
    first = client.get("/v1/audit?limit=3").json()
    assert len(first["data"]) == 3 and first["next_cursor"]
    rest = client.get(f"/v1/audit?limit=3&cursor={first['next_cursor']}").json()
    assert [r["prompt_tokens"] for r in rest["data"] + first["data"]] == [3] * 5
    assert len(rest["data"]) == 2 and rest["next_cursor"] is None
    assert threads == [True, True]


def test_metrics_names(make: Factory) -> None:
    client, _, _ = make()
    client.post("/v1/completions", json={"prompt": "x", "max_tokens": 3})
    text = client.get("/metrics").text
    for name in ["deepseek_requests_waiting", "deepseek_requests_running",
                 "deepseek_batch_size_bucket", "deepseek_time_to_first_token_seconds_bucket",
                 "deepseek_time_per_output_token_seconds_bucket",
                 "deepseek_e2e_request_latency_seconds_bucket", "deepseek_prompt_tokens_total",
                 "deepseek_generation_tokens_total", "deepseek_kv_cache_usage_ratio",
                 "deepseek_content_filter_total", "deepseek_rate_limited_total",
                 "deepseek_kv_cache_blocks_used", "deepseek_kv_cache_blocks_cached",
                 "deepseek_kv_cache_blocks_total", "deepseek_prefix_cache_queries_total",
                 "deepseek_prefix_cache_hits_total"]:  # fmt: skip
        assert name in text, name
    assert 'deepseek_http_requests_total{endpoint="/v1/completions",status="200"} 1.0' in text


def test_openapi_is_served(make: Factory) -> None:
    client, _, _ = make()
    doc = client.get("/openapi.json").json()
    assert "/v1/chat/completions" in doc["paths"]
