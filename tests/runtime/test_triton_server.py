"""The Triton door (a real tritonserver child) with tritonclient over HTTP and gRPC."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from devkit.runtime_server import RuntimeServer, auth, grpc_stream_responses
from test_openai_server import metric, wait_idle
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.runtime

NAME = "tiny-deepseek"  # the served name is already a valid Triton model name
SYNC = f"{NAME}_sync"


def tensor(module: Any, name: str, value: Any, dtype: str, batched: bool) -> Any:
    array = np.array([value], dtype=object if dtype == "BYTES" else None)
    if dtype == "INT32":
        array = array.astype(np.int32)
    if dtype == "BOOL":
        array = array.astype(np.bool_)
    if batched:  # the _sync model batches: inputs carry a leading batch dimension
        array = array[np.newaxis]
    t = module.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def inputs(module: Any, prompt: str, max_tokens: int, batched: bool) -> list[Any]:
    return [
        tensor(module, "text_input", prompt.encode(), "BYTES", batched),
        tensor(module, "max_tokens", max_tokens, "INT32", batched),
        tensor(module, "ignore_eos", True, "BOOL", batched),
    ]


def test_models_are_ready_only_once_loaded(api_server: RuntimeServer) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{api_server.triton_http}")
    assert client.is_model_ready(NAME) and client.is_model_ready(SYNC)
    config = client.get_model_config(NAME)
    assert config["model_transaction_policy"]["decoupled"] is True


def test_http_infer(api_server: RuntimeServer) -> None:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{api_server.triton_http}")
    result = client.infer(SYNC, inputs(httpclient, "Hello", 8, True), headers=auth("inference"))
    assert isinstance(result.as_numpy("text_output")[0][0], bytes)
    assert result.as_numpy("completion_tokens")[0][0] == 8
    assert result.as_numpy("finish_reason")[0][0] == b"length"


def test_grpc_infer(api_server: RuntimeServer) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{api_server.triton_grpc}")
    result = client.infer(SYNC, inputs(grpcclient, "Hello", 5, True), headers=auth("inference"))
    assert result.as_numpy("completion_tokens")[0][0] == 5


def grpc_stream(server: RuntimeServer, prompt: str, max_tokens: int,
                role: str = "inference") -> list[Any]:  # fmt: skip
    stream_inputs = inputs(grpcclient, prompt, max_tokens, False)
    return grpc_stream_responses(server, NAME, stream_inputs, auth(role), timeout_s=60)


def test_grpc_streaming_is_coalesced(api_server: RuntimeServer) -> None:
    responses = grpc_stream(api_server, "Stream please", 200)
    texts = [r.as_numpy("text_output")[0].decode() for r in responses]
    counts = [int(r.as_numpy("completion_tokens")[0]) for r in responses]
    assert counts[-1] == 200 and counts == sorted(counts)
    assert responses[-1].as_numpy("finish_reason")[0] == b"length"
    assert 1 < len(responses) < 100  # chunks of tokens, not one response per token
    assert "".join(texts)


def test_http_generate_and_generate_stream(api_server: RuntimeServer) -> None:
    base = f"http://127.0.0.1:{api_server.triton_http}/v2/models"
    ask = {"text_input": "Hi", "max_tokens": 30, "ignore_eos": True,
           "authorization": auth("inference")["authorization"]}  # fmt: skip
    once = httpx.post(f"{base}/{SYNC}/generate", json=ask, timeout=60).json()
    assert once["completion_tokens"] == 30 and once["finish_reason"] == "length"
    single = httpx.post(f"{base}/{NAME}/generate", json={**ask, "stream": False}, timeout=60)
    assert single.json()["completion_tokens"] == 30
    r = httpx.post(f"{base}/{NAME}/generate_stream", json=ask, timeout=60)
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["finish_reason"] == "length" and events[-1]["completion_tokens"] == 30
    assert "".join(e["text_output"] for e in events)


def test_the_max_tokens_policy(api_server: RuntimeServer) -> None:
    """The OpenAI door's policy (test_openai_server.py), on Triton: no max_tokens gives
    --default-max-tokens (12), one that cannot fit is refused with the numbers."""
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{api_server.triton_grpc}")
    unset = [tensor(grpcclient, "text_input", b"Hi", "BYTES", True),
             tensor(grpcclient, "ignore_eos", True, "BOOL", True)]  # fmt: skip
    result = client.infer(SYNC, unset, headers=auth("inference"))
    assert result.as_numpy("completion_tokens")[0][0] == 12
    streamed = grpc_stream_responses(api_server, NAME, [
        tensor(grpcclient, "text_input", b"Hi", "BYTES", False),
        tensor(grpcclient, "ignore_eos", True, "BOOL", False)], auth("inference"))  # fmt: skip
    assert int(streamed[-1].as_numpy("completion_tokens")[0]) == 12
    with pytest.raises(InferenceServerException,
                       match=r"400 .*context is 256 tokens, but \d+ prompt tokens plus "
                             r"max_tokens=300 need"):  # fmt: skip
        client.infer(SYNC, inputs(grpcclient, "Hi", 300, True), headers=auth("inference"))


def test_triton_requests_need_a_key_with_the_inference_role(api_server: RuntimeServer) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{api_server.triton_grpc}")
    with pytest.raises(InferenceServerException, match="401 missing_key"):
        client.infer(SYNC, inputs(grpcclient, "x", 2, True))
    with pytest.raises(InferenceServerException, match="403 permission_denied"):
        grpc_stream(api_server, "x", 2, role="auditor")
    with pytest.raises(InferenceServerException) as err:
        client.infer(SYNC, inputs(grpcclient, "x", 2, True),
                     headers={"authorization": "Bearer wrong"})  # fmt: skip
    # Our frames stay out of the message (the _sync model's stub still adds its own).
    assert "401 invalid_key" in str(err.value) and "models.py" not in str(err.value)
    records = httpx.get(api_server.url("/v1/audit?limit=200"), headers=auth("auditor")).json()
    triton = [r for r in records["data"] if r["door"] == "triton"]
    assert {401, 403, 200} <= {r["status"] for r in triton}


def test_both_doors_share_one_running_batch(api_server: RuntimeServer) -> None:
    wait_idle(api_server)
    peak = 0.0
    stream = threading.Thread(target=grpc_stream, args=(api_server, "Triton side", 240))
    stream.start()
    openai_side = threading.Thread(target=lambda: httpx.post(
        api_server.url("/v1/completions"), headers=auth("inference"), timeout=60,
        json={"prompt": "OpenAI side", "max_tokens": 240, "ignore_eos": True}))  # fmt: skip
    openai_side.start()
    while stream.is_alive() or openai_side.is_alive():
        peak = max(peak, metric(api_server, "deepseek_requests_running"))
        time.sleep(0.01)
    stream.join()
    openai_side.join()
    assert peak == 2  # one sequence from each door in the same running batch
