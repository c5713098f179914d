"""The default model (real SmolLM2 GGUF) answers sensibly through both doors; SIGTERM drains.

The drain test stops the server, so it runs last in this module (the fixture is module-scoped).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
from devkit.runtime_server import RuntimeServer, grpc_stream_responses

from deepseek_runtime.server.drain import SHUTDOWN_MARGIN_S

pytestmark = pytest.mark.runtime

QUESTION = "What is the capital of France?"
DRAIN_S = 15  # --drain-timeout-s of the smollm2_server fixture


def triton_stream(server: RuntimeServer, prompt: str, max_tokens: int, ignore_eos: bool,
                  started: threading.Event | None = None) -> list[Any]:  # fmt: skip
    values = {"text_input": np.array([prompt.encode()], dtype=object),
              "max_tokens": np.array([max_tokens], dtype=np.int32),
              "temperature": np.array([0.0], dtype=np.float32),
              "ignore_eos": np.array([ignore_eos], dtype=np.bool_)}  # fmt: skip
    inputs = []
    for name, value in values.items():
        dtype = {"object": "BYTES", "int32": "INT32", "float32": "FP32", "bool": "BOOL"}
        tensor = grpcclient.InferInput(name, list(value.shape), dtype[value.dtype.name])
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return grpc_stream_responses(server, server_model(server), inputs, started=started)


def triton_streams_hanging_up(server: RuntimeServer, count: int, max_tokens: int) -> list[bytes]:
    """`count` concurrent asyncio clients that stop reading at the response carrying
    finish_reason, before Triton's final flag (leaving `async for` cancels the gRPC call), as
    bench/runtime.py's clients do. Returns the reasons."""
    import tritonclient.grpc.aio as aioclient

    model = server_model(server)

    async def one(client: Any, prompt: str) -> bytes:
        inputs = []
        for name, value, dtype in [
            ("text_input", np.array([prompt.encode()], dtype=object), "BYTES"),
            ("max_tokens", np.array([max_tokens], dtype=np.int32), "INT32"),
            ("ignore_eos", np.array([True]), "BOOL"),
        ]:
            tensor = aioclient.InferInput(name, [1], dtype)
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)

        async def requests() -> Any:
            yield {"model_name": model, "inputs": inputs}

        async for result, error in client.stream_infer(requests()):
            if error is not None:
                raise error
            reason = bytes(result.as_numpy("finish_reason")[0])
            if reason:
                return reason
        raise AssertionError("the stream ended without a finish_reason")

    async def main() -> list[bytes]:
        client = aioclient.InferenceServerClient(f"127.0.0.1:{server.triton_grpc}")
        try:
            return await asyncio.gather(*(one(client, f"Story {i}:") for i in range(count)))
        finally:
            await client.close()

    return asyncio.run(main())


def server_model(server: RuntimeServer) -> str:
    return str(httpx.get(server.url("/v1/models"), timeout=10).json()["data"][0]["id"])


def chat_answer(server: RuntimeServer) -> str:
    """The server's greedy answer to QUESTION through the OpenAI door (not streamed)."""
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model=server_model(server), temperature=0, max_tokens=24,
        messages=[{"role": "user", "content": QUESTION}],
    )  # fmt: skip
    return reply.choices[0].message.content or ""


def test_openai_chat_knows_paris(smollm2_server: RuntimeServer) -> None:
    assert "Paris" in chat_answer(smollm2_server)


def test_openai_chat_stream_knows_paris(smollm2_server: RuntimeServer) -> None:
    client = openai.OpenAI(base_url=smollm2_server.url("/v1"), api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=server_model(smollm2_server), temperature=0, max_tokens=24, stream=True,
        messages=[{"role": "user", "content": QUESTION}],
    )  # fmt: skip
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_triton_knows_paris(smollm2_server: RuntimeServer) -> None:
    responses = triton_stream(smollm2_server, "The capital of France is", 8, ignore_eos=False)
    text = "".join(r.as_numpy("text_output")[0].decode() for r in responses)
    assert "Paris" in text


def test_sigterm_drains_both_doors_within_one_budget_then_exits_zero(
    smollm2_server: RuntimeServer,
) -> None:
    """Short streams in flight on both doors finish; streams that cannot finish within the
    drain budget (15 s on this server) end with finish_reason "abort" and a proper end, and
    the whole shutdown fits in the budget plus SHUTDOWN_MARGIN_S: one budget shared by uvicorn,
    Triton and the engine (issue 15, item 9), not each waiting the full budget in turn. Clients
    that hung up earlier do not hold the exit up either."""
    # 32 at once: with fewer, the hang-up rarely lands between the last response and the flag.
    assert triton_streams_hanging_up(smollm2_server, 32, 8) == [b"length"] * 32
    outcome: dict[str, Any] = {}
    started = {name: threading.Event() for name in ("openai", "triton", "openai-long",
                                                     "triton-long")}  # fmt: skip

    def openai_side(name: str, max_tokens: int) -> None:
        body = {"prompt": "Once upon a time", "max_tokens": max_tokens, "ignore_eos": True,
                "stream": True, "temperature": 0}  # fmt: skip
        with httpx.stream("POST", smollm2_server.url("/v1/completions"), json=body,
                          timeout=120) as r:  # fmt: skip
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                started[name].set()
        outcome[name] = lines

    def triton_side(name: str, max_tokens: int) -> None:
        outcome[name] = triton_stream(smollm2_server, "Once upon a time", max_tokens, True,
                                      started[name])  # fmt: skip

    threads = [
        threading.Thread(target=openai_side, args=("openai", 48)),
        threading.Thread(target=triton_side, args=("triton", 48)),
        threading.Thread(target=openai_side, args=("openai-long", 3000)),
        threading.Thread(target=triton_side, args=("triton-long", 3000)),
    ]
    for t in threads:
        t.start()
    assert all(event.wait(60) for event in started.values())
    smollm2_server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.5)
    assert_refused_or_draining(smollm2_server)
    for t in threads:
        t.join(120)
    assert smollm2_server.proc.wait(120) == 0, smollm2_server.tail()
    assert time.monotonic() - signalled < DRAIN_S + SHUTDOWN_MARGIN_S, smollm2_server.tail()
    for name, reason in (("openai", "length"), ("openai-long", "abort")):
        events = [line[6:] for line in outcome[name] if line.startswith("data: ")]
        assert events[-1] == "[DONE]", name  # a proper end, not a cut connection
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == reason, name
    last = outcome["triton"][-1]
    assert int(last.as_numpy("completion_tokens")[0]) == 48
    assert last.as_numpy("finish_reason")[0] == b"length"
    assert outcome["triton-long"][-1].as_numpy("finish_reason")[0] == b"abort"


def assert_refused_or_draining(server: RuntimeServer) -> None:
    """After SIGTERM: no new connections (or, on a kept-alive one, /ready is 503)."""
    try:
        status = httpx.get(server.url("/ready"), timeout=5).status_code
    except httpx.ConnectError:
        return
    assert status == 503
