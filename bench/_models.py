"""Offline bench models: a tiny random Qwen2 with a full 32,000-token byte-level BPE tokenizer.

tests/runtime/conftest.py trains a 640-token tokenizer, which is right for tests but not for a
32,000-token model: most ids a random model samples would decode to nothing, and a streaming
client would see almost no text. Here every id decodes to printable ASCII (1 to 3 characters),
so each generated token becomes streamed text, as with a real model. The vocabulary is built
directly (byte alphabet, two- and three-character merges), deterministic and in about a second.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

VOCAB_SIZE = 32000
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(vocab_size: int = VOCAB_SIZE, seed: int = 0) -> Any:
    """Byte-level BPE with exactly `vocab_size` ids: 256 bytes, 3 specials, then merges of
    printable characters (space included) into two- and three-character tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_chars = sorted(alphabet)
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    # Printable ASCII as the byte-level alphabet spells it (a space is "Ġ").
    printable = [chr(c) for c in range(33, 127)] + ["\u0120"]
    rng = random.Random(seed)
    merges: list[tuple[str, str]] = []
    pairs = [a + b for a in printable for b in printable]
    room = vocab_size - len(vocab) - len(SPECIAL_TOKENS)
    for pair in pairs[:room]:
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
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    assert len(fast) == vocab_size, len(fast)
    return fast


def build_tiny_qwen2(directory: Path, seed: int = 0) -> Path:
    """runtime-notes.md's bench model: Qwen2, vocab 32000, hidden 256, 4 layers, fp32, ~12M
    parameters, saved with its tokenizer and a generation_config (EOS as usual; the bench
    turns it off per request, so every mode produces exactly the tokens asked for)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    tokenizer = build_tokenizer()
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        initializer_range=0.1,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


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
