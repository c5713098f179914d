"""bench/cpu_peer.py's profile: where a decode step of the embedded default goes on this CPU.

In one process, on the bundled SmolLM2 GGUF: the weights' size as loaded against the file,
the torch thread count the server would use, torch.profiler's split of one decode step of
transformers' model at 1 row, and decode-step times (median of interleaved rounds) at 1 and 16
rows for transformers' model and the compact model in fp32, int8 and gguf (the GGUF's own
blocks: op by op, and as the server runs them, fused layer calls), the last also with one
thread more than the server's (does a second thread help when the event loops are idle?).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

ROUNDS = 3
STEPS = 4  # decode steps per timing, after a short prefill (PROMPT tokens)
PROMPT = 8
OP_BY_OP = "compact gguf, op by op"


def _decode_timer(model: Any, config: Any, rows: int) -> Callable[[], float]:
    import torch
    from transformers import DynamicCache

    def timed() -> float:
        cache = DynamicCache(config=config)
        prompt = torch.randint(100, 10_000, (rows, PROMPT))
        model(prompt, cache=cache, logits_to_keep=1)
        token = torch.randint(100, 10_000, (rows, 1))
        start = time.perf_counter()
        for _ in range(STEPS):
            model(token, cache=cache, logits_to_keep=1)
        return (time.perf_counter() - start) / STEPS * 1e3

    return timed


def _profile_split(model: Any, config: Any) -> list[tuple[str, float]]:
    """Share of one batch-1 decode step's self CPU time per aten op (top five)."""
    from torch.profiler import ProfilerActivity, profile

    timer = _decode_timer(model, config, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        timer()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    return [(e.key, e.self_cpu_time_total / total) for e in top]


def _block_mib(model: Any) -> int:
    from deepseek_runtime.model.gguf_weights import BlockLinear

    tensors = [t for m in model.modules() if isinstance(m, BlockLinear)
               for t in (m.qs, m.d, m.m) if t is not None]  # fmt: skip
    return sum(t.numel() * t.element_size() for t in tensors) >> 20


def profile_section(threads: int | None) -> str:
    import torch

    from deepseek_runtime.engine.config import EngineConfig
    from deepseek_runtime.model import gguf_kernel
    from deepseek_runtime.model.compact import compact_model
    from deepseek_runtime.model.compact_weights import quantize_int8
    from deepseek_runtime.model.gguf_layer import fuse_layers
    from deepseek_runtime.model.gguf_weights import use_gguf_blocks
    from deepseek_runtime.model.loader import load_model
    from deepseek_runtime.model.source import default_model_path

    server_threads = threads or EngineConfig().resolved_torch_threads()
    torch.set_num_threads(server_threads)
    loaded = load_model()
    hf = loaded.model
    config = hf.config
    fp32_mib = sum(p.numel() * p.element_size() for p in hf.parameters()) >> 20
    file_mib = default_model_path().stat().st_size >> 20
    compact = compact_model(hf)
    int8 = quantize_int8(compact_model(hf), loaded.tokenizer)  # type: ignore[arg-type]
    gguf = fuse_layers(use_gguf_blocks(compact_model(hf), default_model_path()))  # type: ignore[arg-type]
    # The same blocks run op by op (compact.py's layer) and as fused kernel calls (gguf_layer).
    fused = list(gguf.layers)
    layers = {OP_BY_OP: [getattr(layer, "layer", layer) for layer in fused]}
    more = f"compact gguf, {server_threads + 1} threads"
    models = {"transformers fp32": hf, "compact fp32": compact, "compact int8": int8,
              OP_BY_OP: gguf, "compact gguf": gguf, more: gguf}  # fmt: skip
    times: dict[tuple[str, int], list[float]] = {}
    with torch.inference_mode():
        split = _profile_split(hf, config)
        for _ in range(ROUNDS):  # interleaved, so a noisy neighbour hits every model alike
            for rows in (1, 16):
                for name, model in models.items():
                    torch.set_num_threads(server_threads + (name == more))
                    gguf_kernel.set_threads(server_threads + (name == more))
                    if model is gguf:
                        gguf.layers = torch.nn.ModuleList(layers.get(name, fused))
                    times.setdefault((name, rows), []).append(_decode_timer(model, config, rows)())
        torch.set_num_threads(server_threads)
        gguf_kernel.set_threads(0)
    lines = [
        "## Profile: where a decode step goes",
        "",
        f"- The GGUF ({file_mib} MiB, Q4_1) is dequantized by transformers to fp32: "
        f"{fp32_mib} MiB of weights, all read once per decode step. llama.cpp reads the "
        "4-bit blocks directly. Decode is memory-bound: the matmuls dominate.",
        f"- torch threads in the serving process: {torch.get_num_threads()} (the engine "
        "leaves one core of two to the event loops); llama-server uses every core.",
        f"- `--quantization gguf` keeps the file's blocks: {_block_mib(gguf)} MiB of block "
        "weights (plus the fp32 embedding table, read one row per token).",
        "- torch.profiler, transformers' model, one decode step at 1 row (self CPU time): "
        + ", ".join(f"{name} {share:.0%}" for name, share in split)
        + ".",
        "",
        f"Decode step, ms (median of {ROUNDS} interleaved rounds of {STEPS} steps after a "
        f"{PROMPT}-token prefill):",
        "",
        "| model | 1 row | 16 rows |",
        "| --- | ---: | ---: |",
    ]
    for name in models:
        one, many = (statistics.median(times[(name, rows)]) for rows in (1, 16))
        lines.append(f"| {name} | {one:.1f} | {many:.1f} |")
    return "\n".join(lines) + "\n"
