"""KV reuse through a real server process with the official `openai` client (issue 12): a
multi-turn chat hits the prefix cache, and the response cache answers a repeat per key."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from devkit.runtime_server import KEYS, RuntimeServer, start_server, write_keys

pytestmark = pytest.mark.runtime

MODEL = "tiny-qwen2"
OTHER_KEY = "sk-test-other-app"
SYSTEM = " ".join(["A Kubernetes operator reconciles desired state with actual state."] * 12)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_qwen2_dir: Path
) -> Iterator[RuntimeServer]:
    work = tmp_path_factory.mktemp("kv-reuse-server")
    keys = write_keys(work, {"other-app": ("inference", OTHER_KEY)})
    started = start_server(
        work, "--model", str(tiny_qwen2_dir), "--served-model-name", MODEL, "--no-triton",
        "--api-keys", str(keys), "--audit-log", str(work / "audit.log"),
        "--max-model-len", "1024", "--max-num-seqs", "4",
        "--response-cache-size", "8", "--response-cache-ttl-s", "60",
        "--rate-limit-rps", "1000", "--rate-limit-burst", "1000",
    )  # fmt: skip
    started.extra["audit_log"] = work / "audit.log"
    yield started
    started.stop()


def client(server: RuntimeServer, key: str = KEYS["inference"]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url("/v1"), api_key=key, max_retries=0)


def metric(server: RuntimeServer, name: str) -> float:
    text = httpx.get(server.url("/metrics"), timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_multi_turn_chat_reuses_its_earlier_turns(server: RuntimeServer) -> None:
    chat = client(server)
    messages = [{"role": "system", "content": SYSTEM}]
    hits, prompts = [], []
    for turn in range(4):
        messages.append({"role": "user", "content": f"Question number {turn}: one two three?"})
        before = metric(server, "deepseek_prefix_cache_hits_total")
        reply = chat.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                             temperature=0.7, seed=None)  # fmt: skip
        hits.append(metric(server, "deepseek_prefix_cache_hits_total") - before)
        assert reply.usage is not None
        prompts.append(reply.usage.prompt_tokens)
        messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
    assert hits[0] == 0
    # From turn 2 on, everything up to the previous turn's prompt is found, at block grain.
    for turn in range(1, 4):
        assert hits[turn] >= (prompts[turn - 1] // 16 - 1) * 16 > 0, (hits, prompts)
    assert metric(server, "deepseek_prefix_cache_queries_total") >= sum(prompts)
    assert metric(server, "deepseek_kv_cache_blocks_total") > 0
    assert metric(server, "deepseek_kv_cache_blocks_cached") > 0


def test_the_response_cache_answers_a_repeat_of_the_same_key_only(server: RuntimeServer) -> None:
    ask = {"model": MODEL, "messages": [{"role": "user", "content": "Capital of France?"}],
           "max_tokens": 12, "temperature": 0}  # fmt: skip
    mine, other = client(server), client(server, OTHER_KEY)
    first = mine.chat.completions.create(**ask)  # type: ignore[call-overload]
    started = time.perf_counter()
    again = mine.chat.completions.create(**ask)  # type: ignore[call-overload]
    hit_ms = (time.perf_counter() - started) * 1e3
    streamed = mine.chat.completions.create(**ask, stream=True)  # type: ignore[call-overload]
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    theirs = other.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert again.choices[0].message.content == first.choices[0].message.content == text
    assert theirs.choices[0].message.content == first.choices[0].message.content  # computed
    assert hit_ms < 100, hit_ms  # a few ms on loopback; no engine step
    assert metric(server, 'deepseek_response_cache_total{result="hit"}') == 2
    assert metric(server, 'deepseek_response_cache_total{result="miss"}') == 2
    lines = server.extra["audit_log"].read_text().splitlines()
    records = [json.loads(line) for line in lines if '"/v1/chat/completions"' in line][-4:]
    assert [(r["key"], r["cached"]) for r in records] == [
        ("inference-key", None), ("inference-key", "response"), ("inference-key", "response"),
        ("other-app", None),
    ]  # fmt: skip
