"""bench/runtime.py's baselines: transformers `generate` in the bench's own process, one
request at a time and as one static batch."""

from __future__ import annotations

import time
from typing import Any

from runtime_workload import ONE, STATIC, Run, Sample


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
    run = Run(ONE, 1, samples, wall)
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
