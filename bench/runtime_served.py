"""bench/runtime.py's served path: `deepseek-runtime serve` as a subprocess (devkit), driven by
closed-loop streaming clients on both doors (the official `openai` async client and
tritonclient's asyncio gRPC streaming), and the server's own step counters."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from devkit.runtime_server import RuntimeServer, start_server

from runtime_workload import SERVED_NAME, Run, Sample, Variant
from stream_clients import closed_loop, openai_stream


def start_bench_server(
    model_dir: Path, workdir: Path, threads: int | None, variant: Variant, gpu: bool, seqs: int,
    extra: list[str] | None = None,
) -> RuntimeServer:  # fmt: skip
    """`serve` on free ports; returns once both the OpenAI port and Triton's model are ready."""
    argv = [
        "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--max-num-seqs", str(seqs), "--dtype", variant.dtype,
        "--quantization", variant.quantization, "--rate-limit-rps", "0", "--log-level", "warning",
    ]  # fmt: skip
    if threads is not None:
        argv += ["--torch-threads", str(threads)]
    argv += extra or []
    env = {} if gpu else {"CUDA_VISIBLE_DEVICES": ""}
    return start_server(workdir, *argv, triton_models=(SERVED_NAME,), env=env)


async def openai_level(
    server: RuntimeServer, prompts: list[str], clients: int, total: int, n: int
) -> tuple[list[Sample], float, list[str]]:
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1",
        api_key="unused",  # loopback without --api-keys: the server allows anonymous calls
        max_retries=0,
        timeout=300,
    )

    async def one(prompt: str) -> Sample:
        return Sample(*await openai_stream(client, SERVED_NAME, prompt, n, chat=False))

    async with client:
        return await closed_loop(clients, total, one, prompts)


async def triton_level(
    server: RuntimeServer, prompts: list[str], clients: int, total: int, n: int
) -> tuple[list[Sample], float, list[str]]:
    import tritonclient.grpc.aio as tc

    client = tc.InferenceServerClient(f"127.0.0.1:{server.triton_grpc}")

    def tensor(name: str, value: Any, dtype: str) -> Any:
        array = np.array([value], dtype=object if dtype == "BYTES" else None)
        array = array.astype({"INT32": np.int32, "FP32": np.float32, "BOOL": np.bool_}[dtype]) \
            if dtype != "BYTES" else array  # fmt: skip
        t = tc.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        return t

    async def one(prompt: str) -> Sample:
        inputs = [
            tensor("text_input", prompt.encode(), "BYTES"),
            tensor("max_tokens", n, "INT32"),
            tensor("temperature", 0.0, "FP32"),
            tensor("ignore_eos", True, "BOOL"),
        ]

        async def requests() -> Any:
            yield {"model_name": SERVED_NAME, "inputs": inputs}

        start = time.perf_counter()
        first, tokens = None, 0
        responses = client.stream_infer(requests())
        async for result, error in responses:
            if error is not None:
                raise error
            text = result.as_numpy("text_output")[0]
            if first is None and text:
                first = time.perf_counter() - start
            tokens = int(result.as_numpy("completion_tokens")[0])
            if result.as_numpy("finish_reason")[0]:
                break  # the last response; the server then ends the stream
        if first is None:
            raise RuntimeError("the stream carried no text")
        return Sample(first, tokens)

    try:
        return await closed_loop(clients, total, one, prompts)
    finally:
        await client.close()


def engine_counters(server: RuntimeServer) -> dict[str, float]:
    """The server's own step and TTFT counters from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    wanted = {
        "deepseek_batch_size_count": "steps",
        "deepseek_batch_size_sum": "step_seqs",
        "deepseek_time_to_first_token_seconds_count": "first_tokens",
        "deepseek_time_to_first_token_seconds_sum": "ttft_sum",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                out[wanted[sample.name]] += sample.value
    return out


def served_run(
    door: str, server: RuntimeServer, prompts: list[str], clients: int, total: int, n: int
) -> Run:
    level = openai_level if door == "openai" else triton_level
    before = engine_counters(server)
    samples, wall, errors = asyncio.run(level(server, prompts, clients, total, n))
    after = engine_counters(server)
    d = {k: after[k] - before[k] for k in after}
    run = Run(door, clients, samples, wall, errors=errors)
    run.steps, run.step_seqs = d["steps"], d["step_seqs"]
    if d["first_tokens"]:
        run.engine_ttft_s = d["ttft_sum"] / d["first_tokens"]
    return run
