#!/usr/bin/env python3
"""Runtime benchmark: the same prompts, the same model, the same number of new tokens, three ways.

    .venv/bin/python bench/runtime.py [--quick] [--rounds 4] [--gpu | --no-gpu] [--model DIR]
                                      [--server-arg=--triton-chunk-ms=200 ...]

1. one request at a time through transformers `generate` (in this process);
2. one offline static batch through `generate` (batches of 8 and 32, in this process);
3. the served path: `deepseek-runtime serve` as a subprocess, driven by 1, 8 and 32 concurrent
   streaming clients, with the official `openai` async client (/v1/completions, stream=true)
   and with tritonclient's asyncio gRPC streaming (the decoupled KServe v2 model).

Every mode is greedy and produces exactly --new-tokens tokens per request (`ignore_eos` on the
served path, no EOS in the baselines' generation config); tokens/s comes from the counts
actually produced (usage.completion_tokens, Triton's completion_tokens, generate's output).
TTFT is the time from sending a request to its first non-empty text; for `generate` it is the
time to the first new token (a streamer), for a static batch the same for every row.

The server stays up for the whole run; the modes run interleaved in rounds (each level's
baseline next to its served runs, the order reversed every other round), each ratio is taken
within one round and the median over rounds is reported, so the noise of a shared box moves
numerator and denominator together. The baselines use the server's torch thread count.
Without --model the bench builds runtime-notes.md's tiny Qwen2 (vocab 32000, hidden 256,
4 layers, fp32) offline. On a CUDA machine (auto-detected, or --gpu) it records the same
table per quantization variant; nothing here needs a GPU. Writes bench/results/runtime.md (or
--output) and prints it; a hand-written analysis below ANALYSIS_MARKER in that file is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from _models import build_tiny_qwen2, make_prompts  # noqa: E402

SERVED_NAME = "bench-model"  # a valid Triton model name as it is
DEFAULT_OUTPUT = REPO / "bench" / "results" / "runtime.md"
STATIC = "generate static batch"
ALL_CORES = f"generate static batch, {os.cpu_count()} threads"
TARGETS = {"x static": 0.8, "x one": 10.0, "ttft_p50_s": 0.150}
START_TIMEOUT_S = 600.0


# --- measurements ---


@dataclass
class Sample:
    ttft_s: float
    tokens: int


@dataclass
class Run:
    """One mode at one concurrency in one round."""

    mode: str  # "generate one-at-a-time" | "generate static batch" | "openai" | "triton"
    clients: int  # concurrent clients (the batch size for a static batch)
    samples: list[Sample]
    wall_s: float
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    steps: float = 0.0  # forward passes (engine steps, or generate's decoding steps)
    step_seqs: float = 0.0  # sequences summed over those steps
    engine_ttft_s: float = float("nan")  # mean arrival in the engine -> first token (served)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


class CpuMeter:
    """CPU seconds used by this process (the client) and by the server's process tree."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None

    def _server_cpu(self) -> float:
        if self.server is None:
            return 0.0
        total = 0.0
        for proc in [self.server, *self.server.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    @contextlib.contextmanager
    def measure(self, run_box: list[Run]) -> Iterator[None]:
        c0, s0 = time.process_time(), self._server_cpu()
        yield
        for run in run_box:
            run.client_cpu_s = time.process_time() - c0
            run.server_cpu_s = self._server_cpu() - s0


# --- baselines: transformers generate in this process ---


class FirstTokenTimer:
    """A generate() streamer: put() is called with the prompt, then once per new token."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def put(self, value: Any) -> None:
        self.calls.append(time.perf_counter())

    def end(self) -> None:
        pass


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def generate_batch(
    loaded: Any, gen_config: Any, prompts: list[str], new_tokens: int
) -> tuple[float, float, list[int]]:
    """(wall seconds, seconds to the first new token, new tokens per row) for one generate()."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    enc = tok(prompts, return_tensors="pt", padding=True).to(device)
    timer = FirstTokenTimer()
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=gen_config, streamer=timer)
    _sync(device)
    wall = time.perf_counter() - start
    new = out[:, enc["input_ids"].shape[1] :]
    counts = [int(n) for n in (new != -1).sum(dim=1).tolist()]  # no EOS: nothing is padding
    first = timer.calls[1] - start if len(timer.calls) > 1 else wall
    assert all(c == new_tokens for c in counts), counts
    return wall, first, counts


def baseline_one_at_a_time(loaded: Any, gen_config: Any, prompts: list[str], n: int) -> Run:
    samples, wall = [], 0.0
    for prompt in prompts:
        w, first, counts = generate_batch(loaded, gen_config, [prompt], n)
        wall += w
        samples.append(Sample(first, counts[0]))
    run = Run("generate one-at-a-time", 1, samples, wall)
    run.steps = run.step_seqs = float(n * len(prompts))
    return run


def baseline_static(loaded: Any, gen_config: Any, prompts: list[str], n: int) -> Run:
    wall, first, counts = generate_batch(loaded, gen_config, prompts, n)
    run = Run(STATIC, len(prompts), [Sample(first, c) for c in counts], wall)
    run.steps, run.step_seqs = float(n), float(n * len(prompts))
    return run


def make_gen_config(loaded: Any, new_tokens: int) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=0,
        do_sample=False,
        eos_token_id=None,  # exactly new_tokens per row, as ignore_eos on the served path
        pad_token_id=loaded.pad_token_id,
        bos_token_id=None,
    )


# --- the served path ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    triton_grpc: int
    triton_http: int
    argv: list[str]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        urls = [
            f"http://127.0.0.1:{self.port}/ready",
            f"http://127.0.0.1:{self.triton_http}/v2/models/{SERVED_NAME}/ready",
        ]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if all(httpx.get(u, timeout=2).status_code == 200 for u in urls):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {START_TIMEOUT_S} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(
    model_dir: Path,
    workdir: Path,
    threads: int | None,
    variant: Variant,
    gpu: bool,
    seqs: int,
    extra: list[str] | None = None,
    command: list[str] | None = None,
) -> Server:
    """`deepseek-runtime serve` (or `command`) on free ports; waits for OpenAI and Triton."""
    port, http, grpc, metrics = (free_port() for _ in range(4))
    exe = REPO / ".venv" / "bin" / "deepseek-runtime"
    if command is None:
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "deepseek_runtime.cli"]
    argv = [
        *command,
        "serve", "--model", str(model_dir), "--served-model-name", SERVED_NAME,
        "--port", str(port), "--triton-http-port", str(http), "--triton-grpc-port", str(grpc),
        "--triton-metrics-port", str(metrics), "--max-num-seqs", str(seqs),
        "--dtype", variant.dtype, "--quantization", variant.quantization,
        "--rate-limit-rps", "0", "--log-level", "warning",
    ]  # fmt: skip
    if threads is not None:
        argv += ["--torch-threads", str(threads)]
    argv += extra or []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(proc, log, port, grpc, http, argv)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


async def _drive(
    clients: int, total: int, one: Any, prompts: list[str]
) -> tuple[list[Sample], float, list[str]]:
    """`clients` closed-loop workers sending `total` requests in all; (samples, wall, errors)."""
    samples: list[Sample] = []
    errors: list[str] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            try:
                samples.append(await one(prompts[i % len(prompts)]))
            except Exception as exc:  # a failed request is reported, not retried
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return samples, time.perf_counter() - start, errors


async def openai_level(
    server: Server, prompts: list[str], clients: int, total: int, n: int
) -> tuple[list[Sample], float, list[str]]:
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{server.port}/v1",
        api_key="unused",  # loopback without --api-keys: the server allows anonymous calls
        max_retries=0,
        timeout=300,
    )

    async def one(prompt: str) -> Sample:
        start = time.perf_counter()
        first, tokens = None, 0
        stream = await client.completions.create(
            model=SERVED_NAME,
            prompt=prompt,
            max_tokens=n,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].text:
                first = time.perf_counter() - start
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        if first is None:
            raise RuntimeError("the stream carried no text")
        return Sample(first, tokens)

    async with client:
        return await _drive(clients, total, one, prompts)


async def triton_level(
    server: Server, prompts: list[str], clients: int, total: int, n: int
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
        return await _drive(clients, total, one, prompts)
    finally:
        await client.close()


def engine_counters(server: Server) -> dict[str, float]:
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
    door: str, server: Server, prompts: list[str], clients: int, total: int, n: int
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


# --- the plan, the table ---


@dataclass(frozen=True)
class Variant:
    dtype: str
    quantization: str

    @property
    def label(self) -> str:
        return f"{self.dtype}/{self.quantization}"


@dataclass
class Plan:
    rounds: int
    new_tokens: int
    prompt_tokens: int
    levels: list[int]
    requests: dict[int, int]  # served requests per concurrency level (and prompts one-at-a-time)
    server_args: list[str] = field(default_factory=list)  # appended to `serve`


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def machine() -> dict[str, str]:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        wanted = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
        flags = " ".join(f for f in wanted if f" {f}" in text)
    gpu = ""
    if torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(0)}"
    return {
        "cpu": f"{os.cpu_count()} vCPUs ({len(os.sched_getaffinity(0))} usable), {cpu}"
        + (f" [{flags}]" if flags else "")
        + gpu,
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def model_facts(loaded: Any) -> str:
    cfg = loaded.model.config.get_text_config()
    params = sum(p.numel() for p in loaded.model.parameters())
    return (
        f"{loaded.architecture} `{loaded.model_name}`: vocab {cfg.vocab_size}, hidden "
        f"{cfg.hidden_size}, {cfg.num_hidden_layers} layers, {params / 1e6:.1f}M params, "
        f"{str(loaded.dtype).removeprefix('torch.')}, quantization {loaded.quantization}"
    )


def median_ratio(rounds: list[dict[tuple[str, int], Run]], key: tuple[str, int],
                 base: tuple[str, int]) -> tuple[float, list[float]]:  # fmt: skip
    values = [r[key].tok_s / r[base].tok_s for r in rounds if key in r and base in r]
    values = [v for v in values if np.isfinite(v)]
    return (statistics.median(values) if values else float("nan")), values


def table(
    rounds: list[dict[tuple[str, int], Run]], plan: Plan
) -> tuple[list[str], list[str], list[str]]:
    """Markdown rows of the results table and of the engine view, and the target verdicts."""
    kinds = ["generate one-at-a-time", STATIC, ALL_CORES, "openai", "triton"]
    keys = sorted(
        {k for r in rounds for k in r},
        key=lambda k: (k[0] in ("openai", "triton"), k[1], kinds.index(k[0])),
    )
    one = ("generate one-at-a-time", 1)
    rows = [
        "| mode | clients | requests | new tokens | tok/s | TTFT p50 ms | TTFT p99 ms "
        "| x static batch (same size) | x one-at-a-time | CPU s client / server / wall |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    engine = [
        "| mode | clients | forward passes | sequences / pass | ms / pass "
        "| TTFT mean ms, client | TTFT mean ms, engine |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts: list[str] = []
    for key in keys:
        runs = [r[key] for r in rounds if key in r]
        mode, clients = key
        ttft = [s.ttft_s * 1000 for run in runs for s in run.samples]
        tok_s = statistics.median(run.tok_s for run in runs)
        static_key = (STATIC, clients) if clients > 1 else one
        x_static, _ = median_ratio(rounds, key, static_key)
        x_one, _ = median_ratio(rounds, key, one)
        served = mode in ("openai", "triton")
        errors = sum(len(run.errors) for run in runs)
        cpu = " / ".join(
            f"{statistics.median(v):.1f}"
            for v in (
                [run.client_cpu_s for run in runs],
                [run.server_cpu_s for run in runs],
                [run.wall_s for run in runs],
            )
        )
        door = {"openai": "served, OpenAI HTTP", "triton": "served, Triton gRPC"}
        label = door.get(mode, mode)
        rows.append(
            f"| {label} | {clients} | {sum(len(r.samples) for r in runs)}"
            + (f" (+{errors} failed)" if errors else "")
            + f" | {sum(r.tokens for r in runs)} | {tok_s:,.0f} | {pct(ttft, 50):.0f} "
            f"| {pct(ttft, 99):.0f} | "
            + (f"{x_static:.2f}x" if served or key != static_key else "")
            + f" | {'' if key == one else f'{x_one:.1f}x'} | {cpu} |"
        )
        if served and clients == max(plan.levels):
            verdicts += verdict_lines(rounds, key, static_key, one, ttft)
        steps = statistics.median(run.steps for run in runs)
        per_pass = statistics.median(run.step_seqs / run.steps for run in runs if run.steps)
        ms = statistics.median(1000 * run.wall_s / run.steps for run in runs if run.steps)
        in_engine = [run.engine_ttft_s * 1000 for run in runs if np.isfinite(run.engine_ttft_s)]
        engine.append(
            f"| {label} | {clients} | {steps:.0f} | {per_pass:.1f} | {ms:.1f} "
            f"| {statistics.mean(ttft):.0f} | "
            + (f"{statistics.median(in_engine):.0f}" if in_engine else "")
            + " |"
        )
    return rows, engine, verdicts


def verdict_lines(
    rounds: list[dict[tuple[str, int], Run]],
    key: tuple[str, int],
    static_key: tuple[str, int],
    one: tuple[str, int],
    ttft_ms: list[float],
) -> list[str]:
    door = "OpenAI HTTP" if key[0] == "openai" else "Triton gRPC"
    out = []
    x_static, per_static = median_ratio(rounds, key, static_key)
    x_one, per_one = median_ratio(rounds, key, one)
    p50 = pct(ttft_ms, 50)
    checks = [
        (f"throughput >= {TARGETS['x static']}x the static batch of {key[1]}", x_static,
         TARGETS["x static"], per_static, "x", True),
        (f"throughput >= {TARGETS['x one']:.0f}x one-at-a-time", x_one, TARGETS["x one"],
         per_one, "x", True),
        (f"TTFT p50 < {TARGETS['ttft_p50_s'] * 1000:.0f} ms", p50,
         TARGETS["ttft_p50_s"] * 1000, [], " ms", False),
    ]  # fmt: skip
    for name, value, target, per_round, unit, higher in checks:
        met = value >= target if higher else value < target
        spread = f" (rounds: {', '.join(f'{v:.2f}' for v in per_round)})" if per_round else ""
        if met:
            status = "met"
        else:
            short = (target - value) / target if higher else (value - target) / target
            status = f"**MISSED** by {short:.0%}"
        fmt = f"{value:.2f}{unit}" if unit == "x" else f"{value:.0f}{unit}"
        out.append(f"- {door}, {key[1]} clients: {name}: {fmt}{spread} -> {status}")
    return out


# --- main ---


def run_variant(
    variant: Variant, model_dir: Path, workdir: Path, plan: Plan, gpu: bool, threads: int | None,
    log: Any,
) -> tuple[list[str], str]:  # fmt: skip
    """Everything for one dtype/quantization: (markdown lines, model facts)."""
    import torch

    from deepseek_runtime.loading import load_model

    device = "cuda" if gpu else "cpu"
    log(f"[{variant.label}] loading the model in this process for the generate baselines")
    loaded = load_model(
        model_dir, dtype=variant.dtype, quantization=variant.quantization, device=device
    )
    loaded.tokenizer.padding_side = "left"
    facts = model_facts(loaded)
    gen_config = make_gen_config(loaded, plan.new_tokens)
    biggest = max(plan.levels)
    prompts = make_prompts(loaded.tokenizer, max(plan.requests.values()), plan.prompt_tokens)
    log(f"[{variant.label}] starting deepseek-runtime serve")
    server = start_server(model_dir, workdir, threads, variant, gpu, biggest, plan.server_args)
    log(f"[{variant.label}] server ready: {' '.join(server.argv[1:])}")
    cpu = CpuMeter(server.proc.pid)
    all_cores = os.cpu_count() or 1
    try:
        # Warm both paths (first calls allocate, compile kernels, open connections).
        generate_batch(loaded, gen_config, prompts[:biggest], plan.new_tokens)
        served_run("openai", server, prompts, biggest, biggest, plan.new_tokens)
        served_run("triton", server, prompts, biggest, biggest, plan.new_tokens)
        # Each level's baseline sits next to its served runs, and one-at-a-time next to the
        # biggest level, so each target's ratio compares runs made seconds apart.
        steps: list[tuple[str, int]] = []
        for c in plan.levels:
            if c == biggest:
                steps.append(("generate one-at-a-time", 1))
            if c > 1:
                steps.append((STATIC, c))
            steps += [("openai", c), ("triton", c)]
        extra_static = not gpu and threads is not None and threads < all_cores
        rounds: list[dict[tuple[str, int], Run]] = []
        for rnd in range(plan.rounds):
            order = steps if rnd % 2 == 0 else steps[::-1]
            results: dict[tuple[str, int], Run] = {}
            for mode, clients in order:
                box: list[Run] = []
                with cpu.measure(box):
                    if mode == "generate one-at-a-time":
                        run = baseline_one_at_a_time(
                            loaded, gen_config, prompts[: plan.requests[1]], plan.new_tokens
                        )
                    elif mode == "generate static batch":
                        run = baseline_static(
                            loaded, gen_config, prompts[:clients], plan.new_tokens
                        )
                    else:
                        total = plan.requests[clients]
                        run = served_run(mode, server, prompts, clients, total, plan.new_tokens)
                    box.append(run)
                results[(mode, clients)] = run
                bad = [s.tokens for s in run.samples if s.tokens != plan.new_tokens]
                if bad:
                    run.errors.append(f"{len(bad)} requests produced {sorted(set(bad))} tokens")
                log(
                    f"  round {rnd + 1}/{plan.rounds} {mode:<22} x{clients:<3} "
                    f"{run.tok_s:8,.0f} tok/s  TTFT p50 "
                    f"{pct([s.ttft_s * 1000 for s in run.samples], 50):6.0f} ms"
                    + (f"  errors: {run.errors[:2]}" if run.errors else "")
                )
            if extra_static:  # for reference: what the static batch gets with every core
                torch.set_num_threads(all_cores)
                box = []
                with cpu.measure(box):
                    run = baseline_static(loaded, gen_config, prompts[:biggest], plan.new_tokens)
                    run.mode = ALL_CORES
                    box.append(run)
                torch.set_num_threads(threads or all_cores)
                results[(ALL_CORES, biggest)] = run
                log(f"  round {rnd + 1}/{plan.rounds} {ALL_CORES} x{biggest} "
                    f"{run.tok_s:8,.0f} tok/s")  # fmt: skip
            rounds.append(results)
    finally:
        server.stop()
    rows, engine, verdicts = table(rounds, plan)
    errors = sorted({e for r in rounds for run in r.values() for e in run.errors})
    lines = [f"### {variant.label} on {device}", "", f"Model: {facts}.", "", *rows, ""]
    shown = server.argv[server.argv.index("serve") :]
    shown = [a.replace(str(model_dir), "MODEL_DIR") for a in shown]
    lines += [f"Server: `deepseek-runtime {' '.join(shown)}` (ports: free ones)", ""]
    lines += ["Engine view (forward passes and TTFT from the server's /metrics; medians over "
              "rounds):", "", *engine, ""]  # fmt: skip
    lines += ["Targets at the highest concurrency:", "", *verdicts, ""]
    if errors:
        lines += ["Errors:", "", *[f"- {e}" for e in errors[:10]], ""]
    return lines, facts


ANALYSIS_MARKER = "<!-- analysis: written by hand; bench/runtime.py keeps it when it rewrites -->"
NOTES = """\
## How to read this

- tok/s = new tokens actually produced (every request produced exactly the number asked for,
  unless a row says otherwise) / wall time of the whole mode: for the served rows, from the
  first request sent to the last stream ended, across all clients; one-at-a-time sums the
  per-request times. Medians over rounds; the ratios are per-round ratios (numerator and
  denominator from the same round), median over rounds.
- TTFT: served = request sent -> first chunk with text, as the client sees it (it includes
  queueing behind other requests and the client's own parsing); generate = start of the call ->
  the first new token (the whole batch's prefill for a static batch). p50/p99 pooled over the
  rounds' requests; with few requests p99 is close to the maximum.
- CPU s: CPU seconds used by the bench process (the clients, or `generate` itself for the
  baselines) and by the server's process tree (engine, HTTP, tritonserver, Python backend
  stub) during the mode, against its wall time. On a 2-core box the clients share the cores
  with the server, which the offline baselines do not have to.
- "x static batch (same size)" compares N concurrent clients with one `generate` call over N
  prompts. The "generate static batch, N threads" row (CPU only) is the biggest static batch
  again with torch on every core, for reference: the server by default leaves one core to its
  event loops, and the baselines use the server's thread count.
- Engine view: forward passes the engine ran during the mode (the baselines: generate's decoding
  steps), mean sequences per pass and wall ms per pass; TTFT as the client saw it against the
  engine's own (request arrival in the engine -> first token). The difference is HTTP/gRPC,
  Triton's proxy, tokenization and the client's parsing.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (1 round)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 4; quick 1)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    parser.add_argument("--model", type=Path, help="HF model directory (default: tiny Qwen2)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="for the server and the baselines (default: the server's, all cores but one)",
    )
    gpu_flag = parser.add_mutually_exclusive_group()
    gpu_flag.add_argument("--gpu", action="store_true", default=None, help="force CUDA")
    gpu_flag.add_argument("--no-gpu", dest="gpu", action="store_false", help="CPU even if CUDA")
    parser.add_argument(
        "--variant",
        action="append",
        help="DTYPE/QUANTIZATION, repeatable (default: float32/none on CPU; bfloat16/none, "
        "bfloat16/int8, bfloat16/int4 and auto/fp8 on a GPU)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `serve` argument, repeatable (e.g. --server-arg=--triton-chunk-ms=100)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    import torch

    gpu = torch.cuda.is_available() if args.gpu is None else args.gpu
    if gpu and not torch.cuda.is_available():
        parser.error("--gpu: no CUDA device is available")
    levels = sorted({int(x) for x in args.levels.split(",")})
    rounds = args.rounds or (1 if args.quick else 4)
    if args.quick:
        requests = {c: max(2, c) for c in levels}
    else:
        requests = {c: 8 if c == 1 else max(32, 2 * c) for c in levels}
    requests.setdefault(1, 2 if args.quick else 8)
    plan = Plan(rounds, args.new_tokens, args.prompt_tokens, levels, requests, args.server_arg)
    threads = args.torch_threads
    if threads is None and not gpu:
        threads = max(1, len(os.sched_getaffinity(0)) - 1)  # the server's own default
    if threads is not None:
        torch.set_num_threads(threads)
    if args.variant:
        variants = [Variant(*v.split("/", 1)) for v in args.variant]
    elif gpu:
        variants = [Variant("bfloat16", q) for q in ("none", "int8", "int4")]
        variants.append(Variant("auto", "fp8"))
    else:
        variants = [Variant("float32", "none")]

    started = time.monotonic()
    facts = machine()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        workdir = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            log("building the tiny Qwen2 (vocab 32000, hidden 256, 4 layers, fp32)")
            model_dir = build_tiny_qwen2(workdir / "tiny-qwen2")
        for variant in variants:
            try:
                lines, _ = run_variant(variant, model_dir, workdir, plan, gpu, threads, log)
            except Exception as exc:
                log(f"[{variant.label}] failed: {type(exc).__name__}: {exc}")
                lines = [f"### {variant.label}", "", f"Failed: `{type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:300]}`", ""]  # fmt: skip
            sections += lines

    header = [
        "# Runtime benchmark",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/runtime.py', *sys.argv[1:]])}` on "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{time.monotonic() - started:.0f} s in all.",
        "",
        "| | |",
        "| --- | --- |",
        f"| machine | {facts['cpu']}, {facts['ram']} RAM |",
        f"| load average at start | {facts['load']} (the box is shared) |",
        f"| software | Python {facts['python']}, torch {facts['torch']}, "
        f"transformers {facts['transformers']} |",
        f"| torch threads | {threads if threads is not None else 'default'} in the server "
        "(`--torch-threads`) and in the `generate` baselines |",
        f"| workload | {plan.prompt_tokens}-token prompts (all different, same length), "
        f"{plan.new_tokens} greedy new tokens each, EOS ignored |",
        f"| requests | served: {', '.join(f'{plan.requests[c]} at {c}' for c in levels)} "
        f"concurrent clients; one-at-a-time: {plan.requests[1]} prompts |",
        f"| rounds | {plan.rounds}, interleaved (order reversed every other round) |",
        "",
    ]
    text = "\n".join([*header, *sections, NOTES])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    kept = ""
    if args.output.exists():  # a hand-written analysis below the marker survives a rerun
        old = args.output.read_text()
        if ANALYSIS_MARKER in old:
            kept = old[old.index(ANALYSIS_MARKER) :]
    args.output.write_text(text + ("\n" + kept if kept else ""))
    print(text)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
