#!/usr/bin/env python3
"""Decode-step benchmark: the engine's ModelRunner against `generate`, with and without the
CPU kernels of runtime/deepseek_runtime/runner/cpu_kernels.py, in one process.

    .venv/bin/python bench/decode_step.py [--rows 1,32] [--new-tokens 64] [--rounds 5]

Four arms on the same model and prompts (greedy, fp32, the server's torch thread count),
interleaved per round, each timed over prefill + (new_tokens - 1) decode steps:

1. `generate` on the whole static batch (the baseline);
2. the runner with torch.argmax and the lm_head as loaded (what the engine did before);
3. the runner with the blocked argmax;
4. the runner with the blocked argmax and the input-major lm_head (forced, so the arm does
   not depend on the start-up timing that picks it).

Reports ms per step (median over rounds) and each arm against `generate` and against arm 2,
and checks that every arm produced the same tokens. Writes bench/results/decode_step.md.
Without --model it builds the benchmarks' tiny Qwen2 (devkit.tiny_models: vocab 32000, hidden
256, 4 layers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit
from devkit.tiny_models import build_bench_qwen2  # noqa: E402

DEFAULT_OUTPUT = REPO / "bench" / "results" / "decode_step.md"


def runner_tokens(model: Any, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    import torch

    from deepseek_runtime.engine.protocol import SamplingParams
    from deepseek_runtime.engine.scheduler import Scheduler
    from deepseek_runtime.engine.sequence import Sequence
    from deepseek_runtime.runner.model_runner import ModelRunner

    greedy = SamplingParams(temperature=0.0)
    seqs = [Sequence(i, tuple(p), greedy, new_tokens) for i, p in enumerate(prompts)]
    kv_tokens = sum(s.kv_reservation + 16 for s in seqs)
    scheduler = Scheduler(len(seqs), 1 << 20, kv_tokens, prefix_caching=False)
    runner = ModelRunner(model, scheduler.blocks.num_blocks, scheduler.block_size)
    for seq in seqs:
        scheduler.add(seq)
    with torch.inference_mode():
        for _ in range(new_tokens):  # the prefill step, then new_tokens - 1 decode steps
            batch = scheduler.schedule()
            scheduler.postprocess(batch, runner.run(batch))
    return [list(s.output_token_ids) for s in seqs]


def generate_tokens(model: Any, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    import torch
    from transformers import GenerationConfig

    ids = torch.tensor(prompts)
    config = GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=0, do_sample=False,
        eos_token_id=None, pad_token_id=0, bos_token_id=None,
    )  # fmt: skip
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=config)  # fmt: skip
    return [row[len(prompts[0]) :] for row in out.tolist()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,32", help="batch sizes (sequences), comma-separated")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", type=Path, help="HF model directory (default: tiny Qwen2)")
    parser.add_argument("--torch-threads", type=int, help="default: all cores but one")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from deepseek_runtime.runner import cpu_kernels

    threads = args.torch_threads or max(1, len(os.sched_getaffinity(0)) - 1)
    torch.set_num_threads(threads)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        model_dir = args.model or build_bench_qwen2(Path(tmp) / "tiny-qwen2")
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    vocab = int(model.config.vocab_size)
    loaded_head = model.get_output_embeddings()
    input_major = cpu_kernels.InputMajorLinear(loaded_head)
    table: list[str] = []
    all_same = True
    for rows in sorted({int(x) for x in args.rows.split(",")}):
        same, text_rows = _measure(args, model, rows, vocab, loaded_head, input_major)
        all_same = all_same and same
        table += text_rows
    lines = [
        "# Decode-step benchmark",
        "",
        f"`.venv/bin/python bench/decode_step.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"UTC, {time.monotonic() - started:.0f} s in all.",
        "",
        f"Model: {type(model).__name__}, vocab {vocab}, hidden {model.config.hidden_size}, "
        f"{model.config.num_hidden_layers} layers, float32; "
        f"{args.prompt_tokens}-token prompts, {args.new_tokens} greedy new tokens, "
        f"{threads} torch thread(s), {args.rounds} interleaved rounds; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}.",
        "",
        "| rows | arm | ms / step (median) | rounds | x generate (speed) | x runner before | "
        "tokens = generate |",
        "| ---: | --- | ---: | --- | ---: | ---: | --- |",
        *table,
    ]
    lines += [
        "",
        "A step is the whole forward pass plus the pick, over prefill + decode steps (prefill",
        "counts as one). `x generate` > 1 means faster than `generate` on the same batch.",
        "",
    ]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0 if all_same else 1


def _measure(
    args: argparse.Namespace, model: Any, rows: int, vocab: int, loaded_head: Any, input_major: Any
) -> tuple[bool, list[str]]:
    """Time the four arms at `rows` rows; (every arm gave generate's tokens, table lines)."""
    from deepseek_runtime.runner import cpu_kernels, sampling

    rng = random.Random(0)
    prompts = [[rng.randrange(300, vocab) for _ in range(args.prompt_tokens)]
               for _ in range(rows)]  # fmt: skip

    def arm(blocked_argmax: bool, head: Any) -> Callable[[], list[list[int]]]:
        def run() -> list[list[int]]:
            sampling.argmax_rows = cpu_kernels.argmax_rows if blocked_argmax else _torch_argmax
            model.set_output_embeddings(head)
            return runner_tokens(model, prompts, args.new_tokens)

        return run

    def baseline() -> list[list[int]]:
        model.set_output_embeddings(loaded_head)  # generate as transformers ships it
        return generate_tokens(model, prompts, args.new_tokens)

    arms: dict[str, Callable[[], list[list[int]]]] = {
        "generate (static batch)": baseline,
        "runner, torch.argmax, lm_head as loaded": arm(False, loaded_head),
        "runner, blocked argmax, lm_head as loaded": arm(True, loaded_head),
        "runner, blocked argmax, input-major lm_head": arm(True, input_major),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    outputs: dict[str, list[list[int]]] = {}
    for name, fn in arms.items():  # warm-up, and the tokens every arm must agree on
        outputs[name] = fn()
    for r in range(args.rounds):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for name in order:
            start = time.perf_counter()
            arms[name]()
            times[name].append((time.perf_counter() - start) / args.new_tokens * 1e3)
    model.set_output_embeddings(loaded_head)
    sampling.argmax_rows = cpu_kernels.argmax_rows

    reference = outputs["generate (static batch)"]
    same = {name: out == reference for name, out in outputs.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["generate (static batch)"]
    before = median["runner, torch.argmax, lm_head as loaded"]
    lines = []
    for name in arms:
        rounds = ", ".join(f"{t:.1f}" for t in times[name])
        lines.append(
            f"| {rows} | {name} | {median[name]:.1f} | {rounds} | {base / median[name]:.2f}x | "
            f"{before / median[name]:.2f}x | {'yes' if same[name] else '**NO**'} |"
        )
    return all(same.values()), lines


def _torch_argmax(logits: Any) -> Any:
    return logits.argmax(dim=-1)


if __name__ == "__main__":
    sys.exit(main())
