"""The response cache (issue 12): identical deterministic requests answered without the
engine, per API key, with a TTL; hits replayed as the client asked, counted and audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine
from starlette.testclient import TestClient

from deepseek_runtime.doors.generation import Chunk
from deepseek_runtime.doors.openai.app import build_app
from deepseek_runtime.doors.response_cache import ResponseCache, request_key
from deepseek_runtime.doors.services import Services
from deepseek_runtime.guards.audit import AuditLog
from deepseek_runtime.guards.keys import Guard, Principal, Role, hash_key
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.settings import ServerSettings

ALICE = {"Authorization": "Bearer sk-alice"}
BOB = {"Authorization": "Bearer sk-bob"}
ASK = {"prompt": "hello", "max_tokens": 6, "temperature": 0}


def chunks(*reasons: str | None) -> tuple[Chunk, ...]:
    return tuple(Chunk(f"t{i}", r, 3, i + 1) for i, r in enumerate(reasons))


def test_entries_expire_and_the_least_recent_goes_first() -> None:
    now = [0.0]
    cache = ResponseCache(2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", chunks(None, "stop"))
    cache.put("b", chunks("length"))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", chunks("stop"))
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2
    now[0] = 10.5
    assert cache.get("a") is None and cache.get("c") is None


def test_only_finished_answers_are_kept() -> None:
    cache = ResponseCache(8, ttl_s=10)
    for reason in ("abort", "content_filter", None):
        cache.put(reason or "none", chunks(reason))
    assert len(cache) == 0
    assert not ResponseCache(0, 1).enabled


def test_the_key_names_the_tenant_and_ignores_only_delivery() -> None:
    body = {"prompt": "x", "temperature": 0, "stream": False}
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    key = request_key("alice", "m", "/v1/completions", body)
    assert key == request_key("alice", "m", "/v1/completions", streamed)
    assert key != request_key("bob", "m", "/v1/completions", body)
    assert key != request_key("alice", "m", "/v1/chat/completions", body)
    assert key != request_key("alice", "m", "/v1/completions", {**body, "max_tokens": 3})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Services, FakeEngine]]:
    engine = FakeEngine(token_delay_s=0.01)
    keys = {hash_key(k): Principal(name, Role.INFERENCE)
            for name, k in [("alice", "sk-alice"), ("bob", "sk-bob")]}  # fmt: skip
    svc = Services(ServerSettings(), Guard(keys, None), RuntimeMetrics(), OutputFilter([]),
                   AuditLog(tmp_path / "audit.log"), ResponseCache(16, 60.0))  # fmt: skip
    svc.attach(engine)
    svc.ready = True
    with TestClient(build_app(svc)) as client:
        yield client, svc, engine


def completion(client: TestClient, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = client.post("/v1/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_a_repeat_is_answered_from_the_cache_without_the_engine(
    served: tuple[TestClient, Services, FakeEngine],
) -> None:
    client, svc, engine = served
    first = completion(client, ASK, ALICE).json()
    again = completion(client, ASK, ALICE).json()
    # The engine never saw the repeat (how fast a hit is: bench/prefix_cache.py, not a timer here).
    assert len(engine.submitted) == 1
    assert again["choices"] == first["choices"] and again["usage"] == first["usage"]
    assert again["id"] != first["id"]
    metrics = client.get("/metrics").text
    assert 'deepseek_response_cache_total{result="hit"} 1.0' in metrics
    assert 'deepseek_response_cache_total{result="miss"} 1.0' in metrics
    assert svc.audit is not None
    lines = [json.loads(line) for line in svc.audit.path.read_text().splitlines()]
    completions = [r for r in lines if r["endpoint"] == "/v1/completions"]
    assert [r["cached"] for r in completions] == [None, "response"]
    assert completions[1]["completion_tokens"] == completions[0]["completion_tokens"] == 6


def test_a_streamed_hit_replays_as_a_stream(
    served: tuple[TestClient, Services, FakeEngine],
) -> None:
    client, _, engine = served
    whole = completion(client, ASK, ALICE).json()["choices"][0]["text"]
    streamed = completion(client, {**ASK, "stream": True}, ALICE).text
    events = [json.loads(line[6:]) for line in streamed.splitlines()
              if line.startswith("data: {")]  # fmt: skip
    assert "".join(e["choices"][0]["text"] for e in events) == whole
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert streamed.rstrip().endswith("data: [DONE]") and len(engine.submitted) == 1


def test_another_key_never_gets_the_cached_answer(
    served: tuple[TestClient, Services, FakeEngine],
) -> None:
    client, _, engine = served
    completion(client, ASK, ALICE)
    completion(client, ASK, BOB)
    assert len(engine.submitted) == 2
    assert [r.tenant for r in engine.submitted] == ["alice", "bob"]  # prefix reuse is scoped too


def test_sampled_requests_are_never_cached_but_seeded_ones_are(
    served: tuple[TestClient, Services, FakeEngine],
) -> None:
    client, _, engine = served
    sampled = {"prompt": "hello", "max_tokens": 4, "temperature": 0.8}
    completion(client, sampled, ALICE)
    completion(client, sampled, ALICE)
    assert len(engine.submitted) == 2
    seeded = {**sampled, "seed": 7}
    completion(client, seeded, ALICE)
    completion(client, seeded, ALICE)
    assert len(engine.submitted) == 3
