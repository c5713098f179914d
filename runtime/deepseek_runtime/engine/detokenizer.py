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
    """Holds only a short window of token ids (constant work per token, however long the
    sequence): the last few already turned into text, as context, and those not yet shown."""

    def __init__(self, tokenizer: Decoder, prompt_token_ids: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        self._window = list(prompt_token_ids[-CONTEXT_TOKENS:])
        self._read = len(self._window)  # window[:_read] is context, window[_read:] is new
        self.consumed = 0  # output tokens fed so far

    def _decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def step(self, new_token_ids: Sequence[int], final: bool = False) -> str:
        """Text of the tokens fed so far that was not returned yet; `final` flushes a
        held-back incomplete character."""
        self._window.extend(new_token_ids)
        self.consumed += len(new_token_ids)
        if self._read >= len(self._window):
            return ""
        prefix = self._decode(self._window[: self._read])
        full = self._decode(self._window)
        if len(full) <= len(prefix) or (full.endswith(REPLACEMENT_CHAR) and not final):
            # Nothing printable yet (a special token, or half a character): keep the window.
            return ""
        del self._window[: self._read]  # what was context goes; what was new becomes context
        self._read = len(self._window)
        return full[len(prefix) :]
