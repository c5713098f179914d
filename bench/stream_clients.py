"""Closed-loop streaming clients, shared by the benchmarks that drive a served model
(bench/runtime_served.py on both doors, bench/cpu_peer.py against llama.cpp's server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


async def closed_loop(
    clients: int, total: int, one: Callable[[str], Awaitable[T]], prompts: Sequence[str]
) -> tuple[list[T], float, list[str]]:
    """`clients` closed-loop workers sending `total` requests in all, prompts in turn;
    (results, wall seconds, errors). A failed request is reported, not retried."""
    results: list[T] = []
    errors: list[str] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            try:
                results.append(await one(prompts[i % len(prompts)]))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return results, time.perf_counter() - start, errors


async def openai_stream(
    client: Any, model: str, prompt: str, max_tokens: int, *, chat: bool
) -> tuple[float, int]:
    """One greedy streaming request that ignores end-of-text, as a chat message or a plain
    completion; (seconds to the first text, completion tokens). The tokens come from the final
    usage chunk, or are counted as text chunks where a server sends no usage."""
    common: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "extra_body": {"ignore_eos": True},
    }
    start = time.perf_counter()
    first, chunks, usage = None, 0, None
    if chat:
        messages = [{"role": "user", "content": prompt}]
        stream = await client.chat.completions.create(messages=messages, **common)
    else:
        stream = await client.completions.create(prompt=prompt, **common)
    async for chunk in stream:
        choice = chunk.choices[0] if chunk.choices else None
        if choice is not None and (choice.delta.content if chat else choice.text):
            first = first if first is not None else time.perf_counter() - start
            chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
    if first is None:
        raise RuntimeError("the stream carried no text")
    return first, usage if usage is not None else chunks
