#!/usr/bin/env python3
"""Tensor-parallel benchmark (issue 11): `serve` with one rank vs two ranks (gloo on CPU), the
same model and requests, one server at a time, in one run.

    .venv/bin/python bench/tensor_parallel.py [--requests 16] [--new-tokens 32] [--quick]

Closed-loop clients (the official `openai` client) at 1 and 8 concurrent requests; tokens/s
and the TP=2 / TP=1 ratio. Both servers must give the same greedy tokens. On CPU two ranks
share the same cores and add two collectives per layer plus a step broadcast, so TP=2 is
expected to be SLOWER here: the point is correctness and the size of that overhead. The
speed-up of sharding (memory, and bandwidth per GPU) is measured on a multi-GPU machine.

Writes bench/results/tensor_parallel.md. Without --model it builds the benchmarks' tiny Qwen2
(devkit.tiny_models: vocab 32000, hidden 256, 4 layers, 4 heads, 2 KV heads, fp32).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit
from devkit.ports import free_port  # noqa: E402
from devkit.runtime_server import RuntimeServer, start_server  # noqa: E402
from devkit.tiny_models import build_bench_qwen2, make_prompts  # noqa: E402

DEFAULT_OUTPUT = REPO / "bench" / "results" / "tensor_parallel.md"
SERVED = "bench"
LEVELS = (1, 8)


def serve(model: Path, work: Path, ranks: int, seqs: int) -> RuntimeServer:
    argv = ["--model", str(model), "--served-model-name", SERVED, "--no-triton",
            "--max-num-seqs", str(seqs), "--max-model-len", "512", "--rate-limit-rps", "0",
            "--log-level", "warning", "--tensor-parallel-size", str(ranks),
            "--rendezvous-port", str(free_port())]  # fmt: skip
    return start_server(work, *argv, env={"CUDA_VISIBLE_DEVICES": ""})


def drive(
    server: RuntimeServer, prompts: list[str], clients: int, new: int
) -> tuple[float, list[str]]:
    """All prompts through `clients` closed-loop workers: (tokens/s, texts in prompt order)."""
    import openai

    client = openai.OpenAI(base_url=server.url("/v1"), api_key="none", max_retries=0, timeout=600)

    def one(prompt: str) -> str:
        r = client.completions.create(model=SERVED, prompt=prompt, max_tokens=new,
                                      temperature=0, extra_body={"ignore_eos": True})  # fmt: skip
        return r.choices[0].text

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        texts = list(pool.map(one, prompts))
    return len(prompts) * new / (time.perf_counter() - start), texts


def measure(
    model: Path, work: Path, ranks: int, prompts: list[str], new: int
) -> dict[int, tuple[float, list[str]]]:
    server = serve(model, work, ranks, max(LEVELS))
    try:
        drive(server, prompts[:2], 2, 4)  # first requests pay one-off set-up
        return {clients: drive(server, prompts, clients, new) for clients in LEVELS}
    finally:
        server.stop()


def report(results: dict[int, dict[int, tuple[float, list[str]]]], args: argparse.Namespace,
           took: float) -> str:  # fmt: skip
    import torch

    same = all(results[1][c][1] == results[2][c][1] for c in LEVELS)
    lines = [
        "# Tensor-parallel benchmark (issue 11)", "",
        f"`.venv/bin/python bench/tensor_parallel.py` (`make bench-tp`) on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {took:.0f} s in all. Model: "
        f"{args.model_note}; {len(os.sched_getaffinity(0))} CPUs ({platform.machine()}), "
        f"torch {torch.__version__}, gloo. {args.requests} requests of {args.prompt_tokens} "
        f"prompt tokens and {args.new_tokens} greedy new tokens (EOS ignored) per level; one "
        f"server at a time, through the OpenAI door. Load average of the machine at the start "
        f"and the end: {args.load_start:.1f} / {os.getloadavg()[0]:.1f} (a shared machine "
        "makes every figure noisier; the two arms ran back to back).", "",
        "| clients | TP=1 tokens/s | TP=2 tokens/s | TP=2 / TP=1 | same tokens |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]  # fmt: skip
    for c in LEVELS:
        one, two = results[1][c][0], results[2][c][0]
        match = "yes" if results[1][c][1] == results[2][c][1] else "NO"
        lines.append(f"| {c} | {one:.0f} | {two:.0f} | {two / one:.2f}x | {match} |")
    lines += [
        "",
        "On CPU both ranks share the same cores, and each layer adds two all-reduces (attention "
        "and MLP outputs) plus one broadcast of the step per forward, so TP=2 is slower here: "
        "this table is the overhead of the protocol, not the speed-up. Tensor parallelism is "
        "for models that do not fit one GPU; its speed on GPUs (NCCL) is measured on a machine "
        "with several.",
    ]
    if not same:
        lines.append("\n**The two servers' tokens differ: a correctness failure.**")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a save_pretrained directory (default: tiny)")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="4 requests of 8 tokens")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if args.quick:
        args.requests, args.new_tokens = 4, 8
    started = time.perf_counter()
    args.load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or build_bench_qwen2(work / "model")
        args.model_note = ("the benchmarks' tiny Qwen2 (vocab 32000, hidden 256, 4 layers, "
                           "fp32)") if args.model is None else str(model)  # fmt: skip
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        prompts = make_prompts(tokenizer, args.requests, args.prompt_tokens)
        results = {ranks: measure(model, work, ranks, prompts, args.new_tokens)
                   for ranks in (1, 2)}  # fmt: skip
    text = report(results, args, time.perf_counter() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0 if "differ" not in text else 1


if __name__ == "__main__":
    sys.exit(main())
