"""The compact Llama forward (model/compact.py): exactly the transformers model in fp32, on
every mask the engine or a caller passes; and its int8 mode, which is not exact but sane."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

import pytest
import torch
from devkit.prompts import chat_ids
from test_engine import collect, greedy, reference, running

from deepseek_runtime.model.compact import CompactCausalLM, compact_model
from deepseek_runtime.model.compact_weights import Int8Linear
from deepseek_runtime.model.loader import LoadedModel, load_model

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def llama(tiny_llama_dir: Path) -> LoadedModel:
    return load_model(tiny_llama_dir)


def test_fp32_logits_equal_transformers_on_none_2d_and_4d_masks(llama: LoadedModel) -> None:
    hf = llama.model
    compact = compact_model(hf)
    assert isinstance(compact, CompactCausalLM)
    ids = torch.tensor([[0, 0, 11, 42, 7], [5, 9, 11, 42, 7]])  # row 0 left-padded
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions = (padding.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        for mask in (None, padding):
            kwargs = {"attention_mask": mask, "position_ids": None if mask is None else positions}
            want = hf(ids, use_cache=False, **kwargs).logits
            got = compact(ids, use_cache=False, **kwargs).logits
            assert torch.equal(got, want)
        causal = torch.full((5, 5), torch.finfo(torch.float32).min).triu(1)[None, None]
        want = hf(ids[1:], attention_mask=causal, use_cache=False).logits
        assert torch.equal(compact(ids[1:], attention_mask=causal, use_cache=False).logits, want)


def test_fp32_engine_matches_generate_token_for_token(llama: LoadedModel) -> None:
    """Through the engine's runner, paged KV cache, explicit 4-D masks and joining/leaving
    sequences: the same greedy tokens as transformers' `generate`."""
    rng = random.Random(3)
    vocab = llama.model.config.vocab_size
    prompts = [[rng.randrange(3, vocab) for _ in range(rng.randint(1, 30))] for _ in range(10)]
    lengths = [rng.randint(4, 12) for _ in prompts]
    compact = dataclasses.replace(llama, model=compact_model(llama.model))
    expected = [reference(llama, p, n) for p, n in zip(prompts, lengths, strict=True)]
    with running(compact, max_num_seqs=4, max_num_batched_tokens=64) as engine:

        async def main() -> list[list[int]]:
            jobs = [collect(engine, p, greedy(n)) for p, n in zip(prompts, lengths, strict=True)]
            return [r.tokens for r in await asyncio.gather(*jobs)]

        assert asyncio.run(main()) == expected


def test_fp32_smollm2_is_greedy_identical_to_generate(smollm2_loaded: LoadedModel) -> None:
    tokenizer = smollm2_loaded.tokenizer
    prompt = tokenizer.encode("The three primary colours are", add_special_tokens=False)
    compact = dataclasses.replace(smollm2_loaded, model=compact_model(smollm2_loaded.model))
    with running(compact, max_model_len=256) as engine:
        got = asyncio.run(collect(engine, prompt, greedy(24))).tokens
    assert got == reference(smollm2_loaded, prompt, 24)


def test_int8_on_cpu_is_the_compact_model_with_int8_linears(tiny_llama_dir: Path) -> None:
    loaded = load_model(tiny_llama_dir, quantization="int8")
    model = loaded.model
    assert isinstance(model, CompactCausalLM) and loaded.quantization == "int8"
    assert loaded.architecture == "LlamaForCausalLM" and loaded.dtype == torch.float32
    layer = model.layers[0]
    assert all(isinstance(m, Int8Linear) for m in (layer.qkv, layer.gate_up, layer.down))
    assert isinstance(model.lm_head, Int8Linear)
    assert not isinstance(layer.o_proj, Int8Linear)  # kept float (compact_weights.py)
    with running(loaded) as engine:
        out = asyncio.run(collect(engine, (11, 42, 7), greedy(5, ignore_eos=True)))
    assert out.finish == "length" and len(out.tokens) == 5


def test_int8_smollm2_still_knows_the_capital_of_france(smollm2_gguf: Path) -> None:
    loaded = load_model(smollm2_gguf, quantization="int8")
    assert isinstance(loaded.model, CompactCausalLM)
    prompt = chat_ids(loaded.tokenizer, "What is the capital of France?")
    with running(loaded, max_model_len=512) as engine:
        answer = asyncio.run(collect(engine, prompt, greedy(24)))
    assert "Paris" in answer.text and answer.finish == "stop"
