"""--kv-cache-tokens bounds the KV cache the runner really allocates (issue 15, item 10; the
paged cache of issue 12).

The real engine on a tiny Qwen2 serves mixed long and short prompts under a tight budget; after
every step the test reads the cache's own pools (token slots, and their bytes) and keeps the
peak. The tokens must match what generate() makes, so admission only delays, never harms.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig

from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.protocol import GenerationRequest, SamplingParams
from deepseek_runtime.engine.scheduler import ScheduledBatch
from deepseek_runtime.model.loader import load_model
from deepseek_runtime.runner.loop import LLMEngine

pytestmark = pytest.mark.runtime

BUDGET = 600  # KV tokens
NEW = 40


def test_peak_kv_cache_stays_within_the_budget(tiny_qwen2_dir: Path) -> None:
    loaded = load_model(tiny_qwen2_dir)
    config = loaded.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    # keys and values, every layer, in float32
    bytes_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4
    rng = random.Random(3)
    vocab = config.vocab_size
    prompts = [[rng.randrange(3, vocab) for _ in range(n)] for n in [200, 10, 12, 9, 180] + [8] * 7]
    engine = LLMEngine(loaded, EngineConfig(max_num_seqs=12, max_model_len=256,
                                            kv_cache_tokens=BUDGET)).start()  # fmt: skip
    assert engine.wait_ready(120)
    peak = {"slots": 0, "bytes": 0, "rows": 0}
    run = engine.runner.run

    def measured(batch: ScheduledBatch) -> list[int]:
        tokens = run(batch)
        slots, nbytes = engine.runner.allocated()
        peak["slots"] = max(peak["slots"], slots)
        peak["bytes"] = max(peak["bytes"], nbytes)
        peak["rows"] = max(peak["rows"], len(batch.seqs))
        return tokens

    engine.runner.run = measured  # type: ignore[method-assign]
    params = SamplingParams(max_tokens=NEW, temperature=0.0, ignore_eos=True)

    async def main() -> list[list[int]]:
        async def one(i: int, prompt: list[int]) -> list[int]:
            request = GenerationRequest(f"r{i}", tuple(prompt), params)
            return [t async for d in engine.generate(request) for t in d.token_ids]

        return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    try:
        results = asyncio.run(main())
    finally:
        engine.shutdown(drain=False)
    assert all(len(r) == NEW for r in results)
    assert peak["slots"] <= BUDGET, peak  # the pools' token slots
    assert peak["bytes"] <= BUDGET * bytes_per_token, (peak, bytes_per_token)
    assert peak["rows"] >= 7  # paged: the short prompts batch beside the long ones
    exactly_new = GenerationConfig(max_new_tokens=NEW, do_sample=False, eos_token_id=None,
                                   pad_token_id=loaded.pad_token_id)  # fmt: skip
    for prompt, got in list(zip(prompts, results, strict=True))[:3]:
        ids = torch.tensor([prompt])
        out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids),
                                    generation_config=exactly_new)  # fmt: skip
        assert got == out[0, len(prompt) :].tolist()
