"""The mailbox between the engine thread and one request's consumer on its own event loop.

The engine thread appends what a step produced and wakes the consumer's loop at most once
until the consumer reads (loop.call_soon_threadsafe). The consumer takes everything pending as
one delta: a slow consumer gets bigger chunks instead of a backlog of one message per token.
No torch here.
"""

from __future__ import annotations

import asyncio
import threading

from deepseek_runtime.engine.protocol import EngineError, FinishReason, GenerationDelta


class RequestStream:
    def __init__(self, loop: asyncio.AbstractEventLoop, prompt_tokens: int, wake_every: int = 1):
        self.loop = loop
        self.prompt_tokens = prompt_tokens
        self.wake_every = wake_every
        self.event = asyncio.Event()
        self._lock = threading.Lock()
        self._text: list[str] = []
        self._token_ids: list[int] = []
        self._completion_tokens = 0
        self._finish_reason: FinishReason | None = None
        self._error: EngineError | None = None
        self._wake_pending = False
        self._closed = False  # the consumer saw the end; nothing more is delivered

    def push(
        self,
        text: str,
        token_ids: list[int],
        completion_tokens: int,
        finish_reason: FinishReason | None = None,
    ) -> bool:
        """Engine thread: queue output. False means the consumer's loop is gone (abort it)."""
        with self._lock:
            if text:
                self._text.append(text)
            self._token_ids.extend(token_ids)
            self._completion_tokens = completion_tokens
            self._finish_reason = finish_reason or self._finish_reason
            # The first token goes out at once (time to first token); later ones are coalesced
            # so that 32 streams cost the event loop a wake-up every few tokens, not every one.
            due = (
                completion_tokens == 1
                or len(self._token_ids) >= self.wake_every
                or finish_reason is not None
            )
            return self._wake(due)

    def fail(self, error: EngineError) -> bool:
        """Engine thread: end the request with an error the consumer raises."""
        with self._lock:
            self._error = error
            return self._wake(True)

    def _wake(self, due: bool) -> bool:
        if not due or self._wake_pending:
            return True
        self._wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop is closed: its consumer has gone away
            return False
        return True

    def take(self) -> GenerationDelta | None:
        """Consumer loop: everything pending as one delta, or None if nothing is (a late wake)."""
        with self._lock:
            self._wake_pending = False
            if self._error is not None:
                self._closed = True
                raise self._error
            if not self._token_ids and self._finish_reason is None and not self._text:
                return None
            delta = GenerationDelta(
                text="".join(self._text),
                token_ids=self._token_ids,
                finish_reason=self._finish_reason,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self._completion_tokens,
            )
            self._text, self._token_ids = [], []
            self._closed = self._finish_reason is not None
            return delta

    @property
    def closed(self) -> bool:
        return self._closed

    async def next_delta(self) -> GenerationDelta:
        """Wait for the next non-empty delta."""
        while True:
            await self.event.wait()
            self.event.clear()
            delta = self.take()
            if delta is not None:
                return delta
