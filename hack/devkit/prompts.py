"""Prompts as a chat client sends them: a user's question rendered through the model's own
chat template, as token ids (what the engine takes)."""

from __future__ import annotations

from typing import Any


def chat_ids(tokenizer: Any, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer.encode(rendered, add_special_tokens=False))
