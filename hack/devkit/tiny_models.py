"""Tiny random models saved like real checkpoints, offline and in seconds, with real tokenizers.

- `build_tiny_model(arch, dir)`: Llama, Qwen2 or DeepseekV3 (MLA + MoE), hidden 64-128, two
  layers, with a 640-token byte-level BPE tokenizer trained on a few sentences (so multi-byte
  characters span tokens, as in real models). What the runtime suite tests with.
- `build_bench_qwen2(dir)`: the benchmarks' model (Qwen2, vocab 32,000, hidden 256, 4 layers,
  fp32, ~12M parameters) with a 32,000-token tokenizer whose every id decodes to 1 to 3
  printable characters, so each generated token becomes streamed text, as with a real model
  (most ids of a trained 640-token vocabulary padded to 32,000 would decode to nothing).

Needs the runtime extra (torch, transformers, tokenizers); imported lazily.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The capital of France is Paris. The capital of Japan is Tokyo.",
    "A Kubernetes operator reconciles desired state with actual state.",
    "DeepSeek models use multi-head latent attention and a mixture of experts.",
    "Continuous batching admits new sequences while others are still decoding.",
    "Café, naïve, über, 東京, 日本語のテキスト, emoji 🚀🙂 and ünïcödé text.",
    "def main():\n    print('hello world')\n    return 0\n",
    "one two three four five six seven eight nine ten eleven twelve",
] * 4
BENCH_VOCAB_SIZE = 32000


def _chatml(tok: Any) -> Any:
    """The tokenizers object as a transformers tokenizer: eos <|im_end|>, pad <|endoftext|>."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tokenizer(vocab_size: int = 640) -> Any:
    """A byte-level BPE tokenizer trained on CORPUS, with the ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return _chatml(tok)


def build_bench_tokenizer(vocab_size: int = BENCH_VOCAB_SIZE, seed: int = 0) -> Any:
    """Byte-level BPE with exactly `vocab_size` ids: 256 bytes, 3 specials, then merges of
    printable characters (space included) into two- and three-character tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    # Printable ASCII as the byte-level alphabet spells it (a space is "Ġ").
    printable = [chr(c) for c in range(33, 127)] + ["\u0120"]
    rng = random.Random(seed)
    merges: list[tuple[str, str]] = []
    pairs = [a + b for a in printable for b in printable]
    for pair in pairs[: vocab_size - len(vocab) - len(SPECIAL_TOKENS)]:
        merges.append((pair[0], pair[1]))
        vocab[pair] = len(vocab)
    while len(vocab) < vocab_size - len(SPECIAL_TOKENS):
        left, right = rng.choice(pairs), rng.choice(printable)
        if left + right not in vocab:
            merges.append((left, right))
            vocab[left + right] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = _chatml(tok)
    assert len(fast) == vocab_size, len(fast)
    return fast


def _save(config: Any, tokenizer: Any, eos_ids: list[int], directory: Path, seed: int) -> Path:
    """A random model of `config`, its tokenizer and a generation_config, in `directory`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _eos_ids(tokenizer: Any) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]


def _common(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 512,
        "eos_token_id": _eos_ids(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": None,
        "tie_word_embeddings": False,
        # Peakier than the default 0.02: with near-uniform attention a model ignores positions
        # and padding, and a batching bug would not change its tokens.
        "initializer_range": 0.1,
        **overrides,
    }


def model_config(arch: str, tokenizer: Any) -> Any:
    """The tiny configuration of `arch`: llama, qwen2 or deepseek_v3."""
    from transformers import DeepseekV3Config, LlamaConfig, Qwen2Config

    common = _common(tokenizer)
    small = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2}  # fmt: skip
    if arch == "llama":
        return LlamaConfig(**small, **common)
    if arch == "qwen2":
        return Qwen2Config(**small, **common)
    if arch == "deepseek_v3":
        return DeepseekV3Config(
            hidden_size=128, intermediate_size=256, moe_intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=2,
            n_group=2, topk_group=1, n_shared_experts=1,
            kv_lora_rank=64, q_lora_rank=96, qk_rope_head_dim=16, qk_nope_head_dim=32,
            v_head_dim=32, num_mtp_layers=0, **common,
        )  # fmt: skip
    raise ValueError(f"unknown architecture {arch!r}: llama, qwen2 or deepseek_v3")


def build_tiny_model(arch: str, directory: Path, seed: int = 0) -> Path:
    """Save a random tiny `arch` model, its tokenizer and generation_config into `directory`."""
    tokenizer = build_tokenizer()
    return _save(model_config(arch, tokenizer), tokenizer, _eos_ids(tokenizer), directory, seed)


def build_bench_qwen2(directory: Path, seed: int = 0) -> Path:
    """The benchmarks' Qwen2 (vocab 32,000, hidden 256, 4 layers, tied embeddings); EOS as
    usual (the benchmarks turn it off per request, so every mode makes the tokens asked for)."""
    from transformers import Qwen2Config

    tokenizer = build_bench_tokenizer()
    config = Qwen2Config(
        hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, **_common(tokenizer, tie_word_embeddings=True),
    )  # fmt: skip
    return _save(config, tokenizer, _eos_ids(tokenizer), directory, seed)


def make_prompts(tokenizer: Any, count: int, tokens: int, seed: int = 0) -> list[str]:
    """`count` different prompts that each encode to exactly `tokens` ids, and decode back to
    the same text, so every mode (generate, OpenAI, Triton) feeds the model the same ids."""
    words = [
        *("the", "a", "of", "to", "and", "in", "is", "for", "on", "that", "with", "as", "by"),
        *("operator", "batch", "token", "kubernetes", "deepseek", "model", "cache", "decode"),
        *("prefill", "stream", "latency", "replica"),
    ]
    rng = random.Random(seed)
    prompts: list[str] = []
    while len(prompts) < count:
        text = " ".join(rng.choice(words) for _ in range(tokens * 2))
        ids = tokenizer.encode(text, add_special_tokens=True)[:tokens]
        candidate = tokenizer.decode(ids)
        round_trips = tokenizer.encode(candidate, add_special_tokens=True) == ids
        if round_trips and candidate.strip() == candidate != "" and candidate not in prompts:
            prompts.append(candidate)
    return prompts
