"""Hold N concurrent chat requests against an OpenAI-compatible URL, counting every outcome:
the autoscaling test and bench/autoscaling.py drive a scaling episode with it.

Each request opens a connection of its own (no keep-alive): kube-proxy balances connections, not
requests, so a pooled client would stay on the first pod and never reach the new ones.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from openai import AsyncOpenAI

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPT = "Write a long story about a lighthouse keeper and the sea, in many short chapters."


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Load:
    """``concurrency`` clients looping on one chat request each until stop(); runs its own event
    loop in a thread so that a synchronous caller (pytest, the bench) can poll the cluster."""

    def __init__(
        self, base_url: str, concurrency: int = 16, max_tokens: int = 48, timeout: float = 300
    ) -> None:
        self.base_url, self.concurrency = base_url, concurrency
        self.max_tokens, self.timeout = max_tokens, timeout
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.started = self.stopped = 0.0

    def start(self) -> Load:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> Tally:
        """Stops issuing requests and waits for those in flight: each ends counted."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 30)
        self.stopped = time.monotonic()
        return self.tally

    async def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=self.timeout) as http:
            client = AsyncOpenAI(
                base_url=self.base_url, api_key="unused", http_client=http, max_retries=0
            )
            await asyncio.gather(*(self._client(client) for _ in range(self.concurrency)))

    async def _client(self, client: AsyncOpenAI) -> None:
        while not self._stop.is_set():
            try:
                reply = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": PROMPT}],
                    max_tokens=self.max_tokens,
                    temperature=0.8,
                )
                if not reply.choices or not reply.choices[0].message.content:
                    raise ValueError("an empty completion")
                self.tally.ok += 1
            except Exception as error:  # every failure is counted, whatever its kind
                self.tally.failed += 1
                self.tally.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
                await asyncio.sleep(0.5)  # a failing endpoint is not hammered in a tight loop
