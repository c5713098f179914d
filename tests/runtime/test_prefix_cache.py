"""Prefix reuse in the real engine (issue 12): a cached prefix changes no token, is counted,
stays inside its tenant, and a chat's next turn finds the previous one."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.protocol import GenerationRequest, SamplingParams
from deepseek_runtime.model.loader import LoadedModel, load_model
from deepseek_runtime.runner.loop import LLMEngine

pytestmark = pytest.mark.runtime

ARCH_FIXTURES = ["tiny_llama_dir", "tiny_qwen2_dir", "tiny_deepseek_v3_dir"]


@contextlib.contextmanager
def running(loaded: LoadedModel, **config: Any) -> Iterator[LLMEngine]:
    engine = LLMEngine(loaded, EngineConfig(warmup=False, **config)).start()
    assert engine.wait_ready(120)
    try:
        yield engine
    finally:
        engine.shutdown(drain=False)


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)


async def tokens(engine: LLMEngine, prompt: Sequence[int], params: SamplingParams,
                 tenant: str = "") -> list[int]:  # fmt: skip
    request = GenerationRequest("r", tuple(prompt), params, tenant=tenant)
    return [t async for delta in engine.generate(request) for t in delta.token_ids]


def serve(engine: LLMEngine, prompts: list[list[int]], params: SamplingParams) -> list[list[int]]:
    async def main() -> list[list[int]]:
        return await asyncio.gather(*(tokens(engine, p, params) for p in prompts))

    return asyncio.run(main())


def reference(loaded: LoadedModel, prompt: Sequence[int], new: int) -> list[int]:
    ids = torch.tensor([list(prompt)])
    out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=new, eos_token_id=None)  # fmt: skip
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("model_dir", ARCH_FIXTURES)
def test_greedy_tokens_are_the_same_with_and_without_reuse(
    model_dir: str, request: pytest.FixtureRequest
) -> None:
    """Prompts sharing a 40-token system prefix, served concurrently (so later ones join a
    running batch and reuse what earlier ones cached), against reuse off and `generate`."""
    loaded = load_model(request.getfixturevalue(model_dir))
    rng = random.Random(5)
    vocab = loaded.model.config.vocab_size
    system = [rng.randrange(3, vocab) for _ in range(40)]
    prompts = [system + [rng.randrange(3, vocab) for _ in range(rng.randint(1, 30))]
               for _ in range(8)]  # fmt: skip
    with running(loaded, max_num_seqs=4, prefix_caching=False) as engine:
        cold = serve(engine, prompts, greedy(8))
        assert engine.stats().prefix_hit_tokens == 0
    with running(loaded, max_num_seqs=4) as engine:
        serve(engine, prompts[:1], greedy(8))  # caches the system prompt's full blocks
        warm = serve(engine, prompts, greedy(8))
        stats = engine.stats()
    assert warm == cold
    assert warm[:3] == [reference(loaded, p, 8) for p in prompts[:3]]
    assert stats.prefix_hit_tokens >= 8 * 32  # every prompt reused at least 2 blocks


def test_hits_and_queries_are_counted_in_tokens(tiny_qwen2_dir: Path) -> None:
    loaded = load_model(tiny_qwen2_dir)
    prompt = list(range(10, 60))  # 50 tokens: 3 full blocks of 16
    with running(loaded) as engine:
        serve(engine, [prompt], greedy(2))
        first = engine.stats()
        serve(engine, [prompt], greedy(2))
        second = engine.stats()
    assert (first.prefix_query_tokens, first.prefix_hit_tokens) == (50, 0)
    assert (second.prefix_query_tokens, second.prefix_hit_tokens) == (100, 48)
    assert second.kv_blocks_used == 0 and second.kv_blocks_cached == 3


def test_one_tenant_never_reuses_anothers_prefix(tiny_qwen2_dir: Path) -> None:
    loaded = load_model(tiny_qwen2_dir)
    prompt = list(range(10, 60))
    with running(loaded) as engine:

        async def main() -> list[int]:
            hits = []
            for tenant in ("alice", "bob", "alice"):
                await tokens(engine, prompt, greedy(2), tenant)
                hits.append(engine.stats().prefix_hit_tokens)
            return hits

        assert asyncio.run(main()) == [0, 0, 48]


def test_eviction_keeps_the_budget_and_the_tokens(tiny_qwen2_dir: Path) -> None:
    """A budget of 24 blocks and 12 distinct 60-token prompts: cached blocks are evicted to
    make room, and every output is still what a cold engine makes."""
    loaded = load_model(tiny_qwen2_dir)
    rng = random.Random(9)
    prompts = [[rng.randrange(3, 500) for _ in range(60)] for _ in range(12)]
    with running(loaded, max_num_seqs=2, max_model_len=128, kv_cache_tokens=24 * 16) as engine:
        first = serve(engine, prompts, greedy(4))
        again = serve(engine, prompts[-2:], greedy(4))
        stats = engine.stats()
        slots, _ = engine.runner.allocated()
    assert again == first[-2:]
    assert stats.kv_blocks_cached <= 24 and slots <= 24 * 16
    assert stats.prefix_hit_tokens == 2 * 48  # the last two prompts were still cached


def test_a_multi_turn_chat_reuses_the_previous_turns(tiny_qwen2_dir: Path) -> None:
    """Each turn resends the conversation: the prompt, the answer, a new message. The answer's
    blocks were cached while it was generated, so turn n reuses nearly all of turn n-1."""
    loaded = load_model(tiny_qwen2_dir)
    rng = random.Random(2)
    conversation = [rng.randrange(3, 500) for _ in range(70)]
    with running(loaded) as engine:
        hits, expected = [], [0]
        for _ in range(4):
            before = engine.stats().prefix_hit_tokens
            answer = asyncio.run(tokens(engine, conversation, greedy(20), "k"))
            hits.append(engine.stats().prefix_hit_tokens - before)
            # Every token but the last answer token has its KV: the full blocks of those.
            expected.append((len(conversation) + len(answer) - 1) // 16 * 16)
            conversation += answer + [rng.randrange(3, 500) for _ in range(9)]
    assert hits == expected[:4] and hits[1] >= 80
