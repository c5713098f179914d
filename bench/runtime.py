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

Files: runtime_workload.py (what is measured), runtime_baselines.py (`generate`),
runtime_served.py (the server and its clients), runtime_report.py (the tables).

The server stays up for the whole run; the modes run interleaved in rounds (each level's
baseline next to its served runs, the order reversed every other round), each ratio is taken
within one round and the median over rounds is reported, so the noise of a shared box moves
numerator and denominator together. The baselines use the server's torch thread count.
Without --model the bench builds a tiny Qwen2 (vocab 32000, hidden 256, 4 layers, fp32;
devkit.tiny_models) offline. On a CUDA machine (auto-detected, or --gpu) it records the same
table per quantization variant; nothing here needs a GPU. Writes bench/results/runtime.md (or
--output) and prints it; a hand-written analysis below ANALYSIS_MARKER in that file is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit: servers on free ports, tiny models, percentiles

from devkit.stats import percentile  # noqa: E402
from devkit.tiny_models import build_bench_qwen2, make_prompts  # noqa: E402

from runtime_baselines import (  # noqa: E402
    baseline_one_at_a_time,
    baseline_static,
    generate_batch,
    make_gen_config,
)
from runtime_report import ANALYSIS_MARKER, NOTES, machine, model_facts, table  # noqa: E402
from runtime_served import served_run, start_bench_server  # noqa: E402
from runtime_workload import ALL_CORES, ONE, STATIC, CpuMeter, Plan, Run, Variant  # noqa: E402

DEFAULT_OUTPUT = REPO / "bench" / "results" / "runtime.md"


def run_variant(
    variant: Variant, model_dir: Path, workdir: Path, plan: Plan, gpu: bool, threads: int | None,
    log: Any,
) -> tuple[list[str], str]:  # fmt: skip
    """Everything for one dtype/quantization: (markdown lines, model facts)."""
    import torch

    from deepseek_runtime.model.loader import load_model

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
    server = start_bench_server(
        model_dir, workdir, threads, variant, gpu, biggest, plan.server_args
    )
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
                steps.append((ONE, 1))
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
                    if mode == ONE:
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
                    f"{percentile([s.ttft_s * 1000 for s in run.samples], 50):6.0f} ms"
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
    args = server.argv[server.argv.index("serve") + 1 :]
    ports = {"--port", "--triton-http-port", "--triton-grpc-port", "--triton-metrics-port",
             "--metrics-port"}  # fmt: skip
    kept = [a for i, a in enumerate(args) if a not in ports and args[i - 1] not in ports]
    shown = ["serve", *(a.replace(str(model_dir), "MODEL_DIR") for a in kept)]
    lines += [f"Server: `deepseek-runtime {' '.join(shown)}` (ports: free ones)", ""]
    lines += ["Engine view (forward passes and TTFT from the server's /metrics; medians over "
              "rounds):", "", *engine, ""]  # fmt: skip
    lines += ["Targets at the highest concurrency:", "", *verdicts, ""]
    if errors:
        lines += ["Errors:", "", *[f"- {e}" for e in errors[:10]], ""]
    return lines, facts


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
            model_dir = build_bench_qwen2(workdir / "tiny-qwen2")
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
