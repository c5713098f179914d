"""The PyTriton callables over the fake engine, without tritonserver (the runtime suite has it)."""

from __future__ import annotations

import asyncio
import os
import sysconfig
import traceback
from typing import Any

import numpy as np
import pytest
from fake_engine import FakeEngine
from pytriton.proxy.types import Request

from deepseek_runtime.doors.services import Services
from deepseek_runtime.doors.triton.models import TritonModels
from deepseek_runtime.doors.triton.server import ensure_libpython_first, triton_model_name
from deepseek_runtime.doors.triton.tensors import RequestRefused, parse_request
from deepseek_runtime.guards.keys import Guard, Principal, RateLimiter, Role, hash_key
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.settings import ServerSettings


def request(text: bytes = b"hello", batched: bool = False, key: str | None = None,
            **inputs: Any) -> Request:  # fmt: skip
    data = {"text_input": np.array([text], dtype=object)}
    for name, value in inputs.items():
        data[name] = np.array(value if isinstance(value, list) else [value])
    if batched:
        data = {k: v[np.newaxis] for k, v in data.items()}
    return Request(data=data, parameters={"authorization": f"Bearer {key}"} if key else {})


def door(chunk_s: float = 0.0, keys: bool = False, delay: float = 0.0) -> tuple[TritonModels, Any]:
    engine = FakeEngine(lambda p: "abcdefghij" * 3, token_delay_s=delay)
    key_map = {hash_key("k"): Principal("app", Role.INFERENCE)} if keys else None
    svc = Services(ServerSettings(), Guard(key_map, RateLimiter(0, 1)),
                   RuntimeMetrics(), OutputFilter([]))  # fmt: skip
    svc.attach(engine)
    return TritonModels(svc, chunk_s), svc


def run_stream(d: TritonModels, req: Request) -> list[dict[str, np.ndarray]]:
    async def collect() -> list[dict[str, np.ndarray]]:
        return [out[0] async for out in d.stream_fn([req])]

    return asyncio.run(collect())


def test_parse_request_scalars_batched_or_not() -> None:
    for batched in (False, True):
        prompt, opt = parse_request(request(b"hi", batched, max_tokens=np.int32(5),
                                            stop=[b"x", b"", b"yz"]))  # fmt: skip
        assert prompt == "hi"
        assert opt["max_tokens"] == 5 and opt["stop"] == ("x", "yz") and opt["stream"] is True


@pytest.mark.parametrize("text", [b"", b"\xff\xfe"])
def test_bad_text_is_refused(text: bytes) -> None:
    with pytest.raises(RequestRefused, match="400"):
        parse_request(request(text))


def test_streaming_every_token_or_coalesced() -> None:
    every = run_stream(door(chunk_s=0.0)[0], request(max_tokens=np.int32(12)))
    assert len(every) == 12
    coalesced = run_stream(door(chunk_s=10.0, delay=0.001)[0], request(max_tokens=np.int32(12)))
    assert len(coalesced) == 2  # the first token at once, then the rest at the finish
    assert b"".join(o["text_output"][0] for o in coalesced) == b"abcdefghijab"
    assert coalesced[-1]["finish_reason"][0] == b"length"
    assert coalesced[-1]["completion_tokens"][0] == 12


def test_stream_false_answers_once() -> None:
    outs = run_stream(door()[0], request(max_tokens=np.int32(4), stream=np.bool_(False)))
    assert len(outs) == 1 and outs[0]["text_output"][0] == b"abcd"


def test_sync_model_batches_and_isolates_a_bad_request() -> None:
    d, _ = door()
    good = request(b"a", True, max_tokens=np.int32(3))
    bad = request(b"a", True, max_tokens=np.int32(0))
    outs = asyncio.run(d.whole_fn([good, bad]))
    assert outs[0]["text_output"].shape == (1, 1) and outs[0]["text_output"][0][0] == b"abc"
    assert outs[1]["finish_reason"][0][0].startswith(b"error: 400")
    with pytest.raises(RequestRefused, match="max_tokens must be at least 1"):
        asyncio.run(d.whole_fn([bad]))


def test_keys_are_checked_and_errors_carry_no_traceback() -> None:
    d, _ = door(keys=True)
    with pytest.raises(RequestRefused) as err:
        run_stream(d, request())
    text = "".join(traceback.format_exception(None, err.value, err.value.__traceback__))
    assert text == "deepseek_runtime.RequestRefused: 401 missing_key: missing API key: send " \
                   "'Authorization: Bearer KEY'\n"  # fmt: skip
    assert run_stream(d, request(key="k", max_tokens=np.int32(2)))


def test_draining_refuses_new_requests() -> None:
    d, svc = door()
    svc.draining = True
    with pytest.raises(RequestRefused, match="503"):
        run_stream(d, request())
    assert d.in_flight == 0 and d.wait_idle(0.1)


def test_libpython_goes_first_once(monkeypatch: pytest.MonkeyPatch) -> None:
    libdir = sysconfig.get_config_var("LIBDIR")
    monkeypatch.setenv("LD_LIBRARY_PATH", f"/opt/x:{libdir}")
    ensure_libpython_first()
    ensure_libpython_first()
    assert os.environ["LD_LIBRARY_PATH"] == f"{libdir}:/opt/x"


def test_triton_model_names() -> None:
    assert triton_model_name("deepseek-ai/DeepSeek-R1 7B") == "deepseek-ai--DeepSeek-R1-7B"
    assert triton_model_name("tiny.v3_x") == "tiny.v3_x"
