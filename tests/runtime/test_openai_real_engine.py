"""The OpenAI app in-process over the REAL engine (tiny Qwen2): what tests/unit/runtime/doors
proves over a fake engine (stop strings, EOS, length, usage, the output filter) holds for the
engine that serves, whose own code decides each of them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from deepseek_runtime.doors.openai.app import build_app
from deepseek_runtime.doors.services import Services
from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.protocol import GenerationRequest, SamplingParams
from deepseek_runtime.guards.keys import Guard
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.model.loader import LoadedModel, load_model
from deepseek_runtime.runner.loop import LLMEngine
from deepseek_runtime.settings import ServerSettings

pytestmark = pytest.mark.runtime

PROMPT = "The capital of France is"
Serve = Callable[..., tuple[TestClient, Services]]


@pytest.fixture(scope="module")
def loaded(tiny_qwen2_dir: Path) -> LoadedModel:
    return load_model(tiny_qwen2_dir)


@pytest.fixture
def serve(loaded: LoadedModel) -> Iterator[Serve]:
    """An app over a fresh engine: `serve(filters=..., eos=...)`."""
    opened: list[tuple[TestClient, LLMEngine]] = []

    def start(filters: tuple[str, ...] = (), eos: tuple[int, ...] | None = None) -> Any:
        model = loaded if eos is None else dataclasses.replace(loaded, eos_token_ids=eos)
        metrics = RuntimeMetrics()
        engine = LLMEngine(model, EngineConfig(max_num_seqs=4), observer=metrics).start()
        assert engine.wait_ready(120)
        flt = OutputFilter([re.compile(f) for f in filters], holdback=8)
        svc = Services(ServerSettings(), Guard(None, None), metrics, flt)
        svc.attach(engine)
        svc.ready = True
        client = TestClient(build_app(svc))
        opened.append((client, engine))
        return client, svc

    yield start
    for client, engine in opened:
        client.close()
        engine.shutdown(drain=False)


def complete(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/completions", json={"prompt": PROMPT, "temperature": 0, **body})
    assert r.status_code == 200, r.text
    return dict(r.json())


def events(client: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.post(path, json={**body, "stream": True})
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def prompt_tokens(loaded: LoadedModel) -> int:
    return len(loaded.tokenizer.encode(PROMPT, add_special_tokens=True))


def test_length_and_usage(serve: Serve, loaded: LoadedModel) -> None:
    client, _ = serve()
    body = complete(client, max_tokens=7, ignore_eos=True)
    assert body["choices"][0]["finish_reason"] == "length"
    n = prompt_tokens(loaded)
    assert body["usage"] == {"prompt_tokens": n, "completion_tokens": 7, "total_tokens": n + 7}
    streamed = events(client, "/v1/completions", {"prompt": PROMPT, "temperature": 0,
                      "max_tokens": 7, "ignore_eos": True,
                      "stream_options": {"include_usage": True}})  # fmt: skip
    assert (
        "".join(e["choices"][0]["text"] for e in streamed if e["choices"])
        == (body["choices"][0]["text"])
    )
    assert streamed[-1]["usage"] == body["usage"]


def test_stop_string_cuts_the_text_and_counts_what_was_generated(serve: Serve) -> None:
    client, _ = serve()
    full = complete(client, max_tokens=24, ignore_eos=True)["choices"][0]["text"]
    stop = next(full[i : i + 2] for i in range(len(full) // 3, len(full) - 2)
                if full[i : i + 2].strip() and "\ufffd" not in full[i : i + 2])  # fmt: skip
    body = complete(client, max_tokens=24, ignore_eos=True, stop=[stop])
    assert body["choices"][0] == {"index": 0, "text": full[: full.find(stop)],
                                  "logprobs": None, "finish_reason": "stop"}  # fmt: skip
    assert 0 < body["usage"]["completion_tokens"] < 24  # generation ended at the stop string


def test_eos_finishes_with_stop(serve: Serve, loaded: LoadedModel) -> None:
    client, svc = serve()
    assert svc.engine is not None
    ids = tuple(loaded.tokenizer.encode(PROMPT, add_special_tokens=True))
    params = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)

    async def greedy_tokens() -> list[int]:
        assert svc.engine is not None
        return [t async for d in svc.engine.generate(GenerationRequest("p", ids, params))
                for t in d.token_ids]  # fmt: skip

    tokens = asyncio.run(greedy_tokens())
    marker = tokens[3]  # declare the 4th greedy token the model's end of text
    client, _ = serve(eos=(marker,))
    body = complete(client, prompt=list(ids), max_tokens=12)
    assert body["choices"][0]["finish_reason"] == "stop"
    # The EOS token counts as generated (its text is not shown).
    assert body["usage"]["completion_tokens"] == tokens.index(marker) + 1


def test_output_filter_ends_with_content_filter(serve: Serve) -> None:
    client, _ = serve()
    full = complete(client, max_tokens=24, ignore_eos=True)["choices"][0]["text"]
    cut = len(full) // 2
    pattern = re.escape(full[cut : cut + 3])
    client, _ = serve(filters=(pattern,))
    body = complete(client, max_tokens=24, ignore_eos=True)
    expected = full[: re.search(pattern, full).start()]  # type: ignore[union-attr]
    assert body["choices"][0]["text"] == expected
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["usage"]["completion_tokens"] < 24  # the engine stopped generating
    streamed = events(client, "/v1/completions", {"prompt": PROMPT, "temperature": 0,
                      "max_tokens": 24, "ignore_eos": True})  # fmt: skip
    assert "".join(e["choices"][0]["text"] for e in streamed) == expected
    assert streamed[-1]["choices"][0]["finish_reason"] == "content_filter"
    metrics = client.get("/metrics").text
    assert 'deepseek_content_filter_total{door="openai"} 2.0' in metrics
    # Counted under the reason the client got (issue 15, item 13), not the engine's abort/stop.
    finished = re.findall(r'^deepseek_requests_finished_total\{finish_reason="(\w+)"\} (\S+)$',
                          metrics, re.MULTILINE)  # fmt: skip
    assert finished == [("content_filter", "2.0")]


def test_a_filter_that_never_matches_lets_the_text_through(serve: Serve) -> None:
    """The other half of the filter's test: the cut above comes from the match, not from
    having a filter at all."""
    client, _ = serve()
    full = complete(client, max_tokens=24, ignore_eos=True)
    client, _ = serve(filters=("never in any output \\x00",))
    body = complete(client, max_tokens=24, ignore_eos=True)
    assert body["choices"][0] == full["choices"][0]  # same text, finish_reason "length"
    assert 'deepseek_content_filter_total{door="openai"}' not in client.get("/metrics").text


def test_chat_stream_usage(serve: Serve) -> None:
    client, _ = serve()
    body = {"messages": [{"role": "user", "content": "Count"}], "max_tokens": 9,
            "ignore_eos": True, "temperature": 0,
            "stream_options": {"include_usage": True}}  # fmt: skip
    streamed = events(client, "/v1/chat/completions", body)
    assert streamed[-2]["choices"][0]["finish_reason"] == "length"
    assert streamed[-1]["usage"]["completion_tokens"] == 9
    whole = client.post("/v1/chat/completions", json=body).json()
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in streamed if e["choices"])
    assert whole["choices"][0]["message"]["content"] == text
