"""Incremental detokenization that never splits a multi-byte character. No torch here.

Decoding one token at a time breaks byte-level BPE (a CJK character or an emoji spans tokens)
and sentencepiece spacing (a token decoded alone loses its leading space). So each step decodes
a short window twice, with and without the new tokens, and emits the difference; text that ends
in U+FFFD is an incomplete character and waits for the next token. The offsets follow TGI/vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REPLACEMENT_CHAR = "\ufffd"
# Prompt tokens decoded as context for the first output tokens (spacing and merges need it).
CONTEXT_TOKENS = 5


class Decoder(Protocol):
    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Decoder, prompt_len: int) -> None:
        self._tokenizer = tokenizer
        self._prefix_offset = max(prompt_len - CONTEXT_TOKENS, 0)
        self._read_offset = prompt_len

    def _decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def step(self, all_token_ids: Sequence[int], final: bool = False) -> str:
        """New text since the last call; `final` flushes a held-back incomplete character."""
        if self._read_offset >= len(all_token_ids):
            return ""
        prefix = self._decode(all_token_ids[self._prefix_offset : self._read_offset])
        full = self._decode(all_token_ids[self._prefix_offset :])
        if len(full) <= len(prefix) or (full.endswith(REPLACEMENT_CHAR) and not final):
            # Nothing printable yet (a special token, or half a character): keep the window.
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(all_token_ids)
        return full[len(prefix) :]
