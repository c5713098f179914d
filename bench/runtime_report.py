"""bench/runtime.py's report: the machine, the results table, the engine view, the targets."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from devkit.stats import percentile

from runtime_workload import ALL_CORES, ONE, STATIC, Plan, Run

TARGETS = {"x static": 0.8, "x one": 10.0, "ttft_p50_s": 0.150}
Rounds = list[dict[tuple[str, int], Run]]


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


def median_ratio(rounds: Rounds, key: tuple[str, int],
                 base: tuple[str, int]) -> tuple[float, list[float]]:  # fmt: skip
    values = [r[key].tok_s / r[base].tok_s for r in rounds if key in r and base in r]
    values = [v for v in values if np.isfinite(v)]
    return (statistics.median(values) if values else float("nan")), values


def table(rounds: Rounds, plan: Plan) -> tuple[list[str], list[str], list[str]]:
    """Markdown rows of the results table and of the engine view, and the target verdicts."""
    kinds = [ONE, STATIC, ALL_CORES, "openai", "triton"]
    keys = sorted(
        {k for r in rounds for k in r},
        key=lambda k: (k[0] in ("openai", "triton"), k[1], kinds.index(k[0])),
    )
    one = (ONE, 1)
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
            + f" | {sum(r.tokens for r in runs)} | {tok_s:,.0f} | {percentile(ttft, 50):.0f} "
            f"| {percentile(ttft, 99):.0f} | "
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
    rounds: Rounds,
    key: tuple[str, int],
    static_key: tuple[str, int],
    one: tuple[str, int],
    ttft_ms: list[float],
) -> list[str]:
    door = "OpenAI HTTP" if key[0] == "openai" else "Triton gRPC"
    out = []
    x_static, per_static = median_ratio(rounds, key, static_key)
    x_one, per_one = median_ratio(rounds, key, one)
    p50 = percentile(ttft_ms, 50)
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
