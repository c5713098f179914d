#!/usr/bin/env python3
"""Per-token bookkeeping of one long sequence: does a step cost the same at 16k tokens as at 1k?

    .venv/bin/python bench/sequence_step.py [--tokens 16384] [--rounds 5]

Drives the engine's own torch-free step path for one sequence, no model: the scheduler appends
each new token (EOS, max_tokens), the output processor detokenizes it incrementally, applies
the stop strings and pushes the text into the request's stream, and the consumer takes it.
The tokens come from the benchmarks' 32,000-token tokenizer (devkit.tiny_models), every one
printable text. Reports the median time per token around 1k tokens and around 16k tokens, and
their ratio (1.0 = constant work per token; work that grows with the sequence shows as a ratio
well above 1). Writes bench/results/sequence_step.md (or --output).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit

from devkit.tiny_models import build_bench_tokenizer  # noqa: E402

from deepseek_runtime.engine.output import OutputProcessor  # noqa: E402
from deepseek_runtime.engine.protocol import SamplingParams  # noqa: E402
from deepseek_runtime.engine.scheduler import ScheduledBatch, Scheduler  # noqa: E402
from deepseek_runtime.engine.sequence import Sequence  # noqa: E402
from deepseek_runtime.engine.stream import RequestStream  # noqa: E402

DEFAULT_OUTPUT = REPO / "bench" / "results" / "sequence_step.md"
NOTES_MARKER = "<!-- notes: written by hand; bench/sequence_step.py keeps them when it rewrites -->"
WINDOW = 256  # tokens per timed window
STOPS = ("\n\nUser:", "<|end|>")  # stop strings on: the hold-back path runs every step


def step_times(tokenizer: object, tokens: int, seed: int) -> list[float]:
    """Seconds per step for one sequence of `tokens` new tokens."""
    rng = random.Random(seed)
    ids = [rng.randrange(400, 30000) for _ in range(tokens)]
    prompt = tuple(rng.randrange(400, 30000) for _ in range(16))
    params = SamplingParams(max_tokens=tokens + 1, stop=STOPS, ignore_eos=True)
    seq = Sequence(0, prompt, params, tokens + 1)
    loop = asyncio.new_event_loop()  # the consumer's loop; wake-ups are queued, never run
    outputs = OutputProcessor(tokenizer)
    stream = outputs.streams[0] = RequestStream(loop, len(prompt))
    scheduler = Scheduler(1, 1 << 20, 1 << 30)
    scheduler.add(seq)
    scheduler.schedule()  # admitted: running
    batch = ScheduledBatch(decode=[seq])
    times = []
    clock = time.perf_counter
    for token in ids:
        start = clock()
        scheduler.postprocess(batch, [token])
        outputs.process(batch)
        stream.take()
        times.append(clock() - start)
    loop.close()
    return times


def window_median(times: list[float], around: int) -> float:
    lo = max(0, min(around - WINDOW // 2, len(times) - WINDOW))
    return statistics.median(times[lo : lo + WINDOW])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    tokenizer = build_bench_tokenizer()
    at = [1024, args.tokens - WINDOW // 2]
    rows: list[tuple[float, float]] = []
    started = time.monotonic()
    for r in range(args.rounds):
        times = step_times(tokenizer, args.tokens, seed=r)
        rows.append((window_median(times, at[0]), window_median(times, at[1])))
        print(f"round {r + 1}: {rows[-1][0] * 1e6:.1f} us at ~1k, {rows[-1][1] * 1e6:.1f} us "
              f"at ~{round(at[1] / 1024)}k", flush=True)  # fmt: skip
    early = statistics.median(a for a, _ in rows)
    late = statistics.median(b for _, b in rows)
    ratios = [b / a for a, b in rows]
    lines = [
        "# Sequence step benchmark",
        "",
        f"`.venv/bin/python bench/sequence_step.py --tokens {args.tokens} --rounds "
        f"{args.rounds}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s in all; {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}.",
        "",
        "One sequence's per-token bookkeeping (scheduler append, incremental detokenization, "
        f"stop strings {STOPS!r}, stream push and take), no model; median of {WINDOW}-token "
        "windows, median over rounds.",
        "",
        "| position | us per token | rounds |",
        "| --- | ---: | --- |",
        f"| ~1k tokens | {early * 1e6:.1f} | "
        + ", ".join(f"{a * 1e6:.1f}" for a, _ in rows)
        + " |",
        f"| ~{round(at[1] / 1024)}k tokens | {late * 1e6:.1f} | "
        + ", ".join(f"{b * 1e6:.1f}" for _, b in rows)
        + " |",
        "",
        f"Ratio ~{round(at[1] / 1024)}k / ~1k: **{statistics.median(ratios):.2f}** "
        f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); 1.0 is constant work per token.",
        "",
    ]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    old = args.output.read_text() if args.output.exists() else ""
    kept = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else ""
    args.output.write_text(text + ("\n" + kept if kept else ""))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
