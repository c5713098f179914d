"""Whole responses for repeated identical deterministic requests (--response-cache-size).

Only requests whose answer is fixed by the request itself are kept: greedy ones (temperature
0 and the like) and seeded ones; only finished ones ("stop" or "length"). The key is the API
key's name, the model, the endpoint and the whole request body except how it is delivered
(stream, stream_options): a private deployment must never answer one tenant with another's
output. A hit replays the stored chunks, as a stream or as one response, without the engine.
Entries live at most --response-cache-ttl-s, and the least recently used goes first. No torch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from deepseek_runtime.doors.generation import Chunk
from deepseek_runtime.engine.protocol import SamplingParams

REPLAYABLE = ("stop", "length")
DELIVERY_FIELDS = ("stream", "stream_options")  # how a response travels, not what it says


@dataclass(slots=True, frozen=True)
class Entry:
    chunks: tuple[Chunk, ...]
    expires_at: float


def deterministic(params: SamplingParams) -> bool:
    return params.greedy or params.seed is not None


def request_key(tenant: str, model: str, endpoint: str, body: dict[str, Any]) -> str:
    what = {k: v for k, v in body.items() if k not in DELIVERY_FIELDS}
    text = json.dumps([tenant, model, endpoint, what], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    def __init__(
        self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[Chunk, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.chunks

    def put(self, key: str, chunks: tuple[Chunk, ...]) -> None:
        if not self.enabled or not chunks or chunks[-1].finish_reason not in REPLAYABLE:
            return
        self._entries[key] = Entry(chunks, self.clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def recording(self, key: str, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """Pass `chunks` through; store them once the last one says the request finished."""
        seen: list[Chunk] = []
        try:
            async for chunk in chunks:
                seen.append(chunk)
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        self.put(key, tuple(seen))


async def replay(chunks: tuple[Chunk, ...]) -> AsyncIterator[Chunk]:
    for chunk in chunks:
        yield chunk
