#!/usr/bin/env python3
"""Prefix-reuse benchmark (issue 12): the engine with KV reuse on and off, and transformers'
own continuous batching as the peer, on the same model and prompts, in one process.

    .venv/bin/python bench/prefix_cache.py [--conversations 16] [--turns 8] [--quick]

1. Chat: N concurrent conversations of T turns over one shared system prompt; each turn
   resends the whole conversation (bench/prefix_workload.py). TTFT p50/p99 per turn and
   tokens/s, reuse on vs off vs the peer (transformers' ContinuousBatchingManager with its
   block sharing). Every arm must produce the same tokens (greedy).
2. No shared prefix: distinct prompts all at once, reuse on vs off, in interleaved rounds:
   what reuse costs when there is nothing to reuse.
3. The response cache: a repeated temperature-0 chat request through the OpenAI app
   in-process (no network), with the real engine behind it: hit latency.

Writes bench/results/prefix_cache.md. Without --model it builds the benchmarks' tiny Qwen2
(devkit.tiny_models: vocab 32000, hidden 256, 4 layers, fp32).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit
sys.path.insert(0, str(REPO / "bench"))
from devkit.tiny_models import build_bench_qwen2  # noqa: E402

from prefix_workload import (  # noqa: E402
    ArmResult,
    ChatPlan,
    PeerManager,
    engine_batch,
    engine_chat,
    peer_chat,
    quantile,
)

DEFAULT_OUTPUT = REPO / "bench" / "results" / "prefix_cache.md"


def engine(loaded: Any, plan: ChatPlan, reuse: bool, threads: int) -> Any:
    from deepseek_runtime.engine.config import EngineConfig
    from deepseek_runtime.runner.loop import LLMEngine

    context = plan.system_tokens + plan.turns * (plan.user_tokens + plan.new_tokens) + 64
    config = EngineConfig(max_num_seqs=plan.conversations, max_model_len=context,
                          kv_cache_tokens=plan.conversations * context, torch_threads=threads,
                          prefix_caching=reuse, stream_interval_tokens=1)  # fmt: skip
    started = LLMEngine(loaded, config).start()
    if not started.wait_ready(300):
        raise RuntimeError(f"engine failed: {started.failure}")
    return started


def chat_rows(arms: list[ArmResult], turns: int) -> list[str]:
    lines = ["| turn | " + " | ".join(f"{a.name}: TTFT p50 / p99 (ms)" for a in arms) + " |",
             "| ---: |" + " ---: |" * len(arms)]  # fmt: skip
    for turn in range(turns):
        cells = []
        for arm in arms:
            ttfts = arm.ttft_by_turn[turn]
            cells.append(f"{quantile(ttfts, 0.5) * 1e3:.0f} / {quantile(ttfts, 0.99) * 1e3:.0f}")
        lines.append(f"| {turn + 1} | " + " | ".join(cells) + " |")
    return lines


def response_cache_hits(loaded: Any, threads: int, repeats: int = 50) -> list[float]:
    """ms per repeated request answered from the response cache, through the OpenAI app."""
    from starlette.testclient import TestClient

    from deepseek_runtime.doors.openai.app import build_app
    from deepseek_runtime.doors.response_cache import ResponseCache
    from deepseek_runtime.doors.services import Services
    from deepseek_runtime.guards.keys import Guard
    from deepseek_runtime.guards.output_filter import OutputFilter
    from deepseek_runtime.metrics import RuntimeMetrics
    from deepseek_runtime.settings import ServerSettings

    served = engine(loaded, ChatPlan(conversations=2, turns=1, system_tokens=64), True, threads)
    svc = Services(ServerSettings(), Guard(None, None), RuntimeMetrics(), OutputFilter([]),
                   None, ResponseCache(64, 300.0))  # fmt: skip
    svc.attach(served)
    svc.ready = True
    ask = {"messages": [{"role": "user", "content": "What is the capital of France?"}],
           "max_tokens": 32, "temperature": 0}  # fmt: skip
    times = []
    try:
        with TestClient(build_app(svc)) as client:
            client.post("/v1/chat/completions", json=ask).raise_for_status()
            for _ in range(repeats):
                start = time.perf_counter()
                client.post("/v1/chat/completions", json=ask).raise_for_status()
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        served.shutdown(drain=False)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--system-tokens", type=int, default=1500)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--distinct-prompts", type=int, default=32)
    parser.add_argument("--distinct-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the no-shared-prefix arm")
    parser.add_argument("--no-peer", action="store_true", help="skip transformers' manager")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--model", type=Path, help="HF model directory (default: tiny Qwen2)")
    parser.add_argument("--torch-threads", type=int, help="default: all cores but one")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if args.quick:
        args.conversations, args.turns, args.system_tokens = 3, 3, 80
        args.new_tokens, args.distinct_prompts, args.distinct_tokens, args.rounds = 4, 4, 40, 1

    import torch

    from deepseek_runtime.model.loader import load_model

    threads = args.torch_threads or max(1, len(os.sched_getaffinity(0)) - 1)
    torch.set_num_threads(threads)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
        model_dir = args.model or build_bench_qwen2(Path(tmp) / "tiny-qwen2")
        loaded = load_model(model_dir)
        peer_model = None if args.no_peer else load_model(model_dir).model
    vocab = int(loaded.model.config.vocab_size)
    # The tiny model says 512 positions; its RoPE computes any position, and a random model
    # has no trained length to respect: the chat's context is allowed.
    loaded = dataclasses.replace(loaded, max_model_len=1 << 16)
    plan = ChatPlan(args.conversations, args.turns, args.system_tokens,
                    new_tokens=args.new_tokens)  # fmt: skip

    arms: list[ArmResult] = []
    for reuse in (True, False):
        served = engine(loaded, plan, reuse, threads)
        try:
            arms.append(engine_chat(served, plan, vocab, f"reuse {'on' if reuse else 'off'}"))
        finally:
            served.shutdown(drain=False)
    if peer_model is not None:
        context = plan.system_tokens + plan.turns * (plan.user_tokens + plan.new_tokens) + 64
        peer = PeerManager(peer_model, plan.new_tokens, max_batch_tokens=4096,
                           num_blocks=plan.conversations * context // 256 + 8)  # fmt: skip
        try:
            arms.append(peer_chat(peer, plan, vocab))
        finally:
            peer.stop()
    on, off = arms[0], arms[1]
    same = {a.name: a.outputs == on.outputs for a in arms}

    rng = random.Random(7)
    flat = ChatPlan(args.distinct_prompts, 1, args.distinct_tokens, new_tokens=args.new_tokens)
    engines = {reuse: engine(loaded, flat, reuse, threads) for reuse in (True, False)}
    flat_tok_s: dict[bool, list[float]] = {True: [], False: []}
    flat_tok_cpu: dict[bool, list[float]] = {True: [], False: []}
    flat_same = True
    try:
        for r in range(args.rounds):
            # New prompts each round, the same for both arms: nothing is ever found.
            distinct = [[rng.randrange(3, vocab) for _ in range(args.distinct_tokens)]
                        for _ in range(args.distinct_prompts)]  # fmt: skip
            outputs = {}
            for reuse in (True, False) if r % 2 == 0 else (False, True):
                result = engine_batch(engines[reuse], distinct, args.new_tokens, str(reuse))
                flat_tok_s[reuse].append(result.tok_s)
                flat_tok_cpu[reuse].append(result.tok_per_cpu_s)
                outputs[reuse] = result.outputs
            flat_same = flat_same and outputs[True] == outputs[False]
    finally:
        for e in engines.values():
            e.shutdown(drain=False)
    hits_ms = response_cache_hits(loaded, threads)

    turns_from_2 = 1 if plan.turns > 1 else 0
    p50_on, p50_off = on.ttft(turns_from_2, 0.5), off.ttft(turns_from_2, 0.5)
    flat_on, flat_off = statistics.median(flat_tok_s[True]), statistics.median(flat_tok_s[False])
    cpu_on, cpu_off = (statistics.median(flat_tok_cpu[k]) for k in (True, False))
    peer_note = (
        f" Against the peer: {on.tok_s / arms[2].tok_s:.2f}x tokens/s." if len(arms) > 2 else ""
    )
    lines = [
        "# Prefix-reuse benchmark (issue 12)",
        "",
        f"`.venv/bin/python bench/prefix_cache.py{' --quick' if args.quick else ''}` "
        f"(`make bench-prefix`) on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s in all. Model: {type(loaded.model).__name__}, "
        f"vocab {vocab}, hidden {loaded.model.config.hidden_size}, "
        f"{loaded.model.config.num_hidden_layers} layers, float32; {threads} torch thread(s), "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}. One process: only the ratios count.",
        "",
        f"## Chat: {plan.conversations} concurrent conversations x {plan.turns} turns",
        "",
        f"A shared {plan.system_tokens}-token system prompt, {plan.user_tokens}-token user "
        f"messages, {plan.new_tokens} greedy new tokens per turn (EOS ignored); each turn resends "
        "the whole conversation.",
        "",
        "| arm | tokens/s | turns 2+ TTFT p50 (ms) | p99 (ms) | prefix hits / queries (tokens) "
        "| tokens = reuse on |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *[
            f"| {a.name} | {a.tok_s:.0f} | {a.ttft(turns_from_2, 0.5) * 1e3:.0f} | "
            f"{a.ttft(turns_from_2, 0.99) * 1e3:.0f} | {a.hit_tokens} / {a.query_tokens} | "
            f"{'yes' if same[a.name] else '**NO**'} |"
            for a in arms
        ],
        "",
        f"Reuse on vs off: turns 2+ TTFT p50 {(p50_on / p50_off - 1) * 100:+.0f}%, "
        f"throughput {on.tok_s / off.tok_s:.2f}x." + peer_note,
        "",
        *chat_rows(arms, plan.turns),
        "",
        f"## No shared prefix: {args.distinct_prompts} distinct {args.distinct_tokens}-token "
        f"prompts at once, {args.new_tokens} new tokens",
        "",
        "| arm | tokens/s (median) | rounds | tokens per CPU-second (median) | rounds |",
        "| --- | ---: | --- | ---: | --- |",
        *[
            f"| reuse {'on' if k else 'off'} | {statistics.median(v):.0f} | "
            f"{', '.join(f'{x:.0f}' for x in v)} | {statistics.median(flat_tok_cpu[k]):.0f} | "
            f"{', '.join(f'{x:.0f}' for x in flat_tok_cpu[k])} |"
            for k, v in flat_tok_s.items()
        ],
        "",
        f"Reuse on / off: {flat_on / flat_off:.2f}x tokens/s, {cpu_on / cpu_off:.2f}x tokens per "
        "CPU-second (the cost of hashing and looking up blocks that are never found). Wall time "
        "moves with whatever else this shared machine runs; the process's own CPU time much "
        "less, so the CPU-second ratio is the one to read.",
        "",
        "## Response cache (`--response-cache-size`)",
        "",
        f"A repeated temperature-0 chat request through the OpenAI app in-process: hit in "
        f"{statistics.median(hits_ms):.2f} ms median, {max(hits_ms):.2f} ms worst of "
        f"{len(hits_ms)} (no engine step; HTTP client and app included, no network).",
        "",
    ]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0 if all(same.values()) and flat_same else 1


if __name__ == "__main__":
    sys.exit(main())
