"""The path both front doors share into the engine: prompts, output filter, finish metrics.

The max_tokens policy is the engine's (engine/requests.py), the same for both doors: they pass
what the client asked for, or None.

Every stream closes the engine's iterator in a `finally` shielded from cancellation, so a
client that goes away (or a content-filter match) aborts its sequence and frees the slot.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from deepseek_runtime.engine.protocol import (
    Engine,
    EngineError,
    FinishReason,
    GenerationRequest,
    SamplingParams,
)
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

_FALLBACK_TEMPLATE_WARNED = False


@dataclass(slots=True)
class Chunk:
    text: str
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int


def new_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The model's chat template; a plain role-prefixed layout for models that ship none."""
    global _FALLBACK_TEMPLATE_WARNED
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)
    if not _FALLBACK_TEMPLATE_WARNED:
        _FALLBACK_TEMPLATE_WARNED = True
        log.warning("the tokenizer has no chat template; using a plain 'role: text' layout")
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def encode(tokenizer: Any, text: str, chat: bool) -> tuple[int, ...]:
    # A chat template already wrote the special tokens (BOS included): don't add them twice.
    return tuple(int(t) for t in tokenizer.encode(text, add_special_tokens=not chat))


class Generator:
    def __init__(self, engine: Engine, output_filter: OutputFilter, metrics: RuntimeMetrics):
        self.engine = engine
        self.output_filter = output_filter
        self.metrics = metrics

    def request(
        self, prefix: str, prompt: tuple[int, ...], params: SamplingParams, tenant: str = ""
    ) -> GenerationRequest:
        """`tenant` (the API key's name) scopes the engine's prefix reuse."""
        return GenerationRequest(new_request_id(prefix), prompt, params, tenant)

    async def stream(self, request: GenerationRequest, door: str) -> AsyncIterator[Chunk]:
        """The request's chunks, ending with one that carries its finish reason as the client
        gets it: the engine's, or "content_filter" when the output filter ends it (counted in
        deepseek_requests_finished_total here, where that answer is decided)."""
        deltas = self.engine.generate(request)
        filtered = self.output_filter.stream()
        first_at: float | None = None
        first_tokens = 0
        prompt_tokens, completion_tokens = len(request.prompt_token_ids), 0
        answered: FinishReason | None = None
        accepted = True  # False: the engine refused it (queue full, too long...): not counted
        seen = False
        try:
            async for delta in deltas:
                seen = True
                prompt_tokens, completion_tokens = delta.prompt_tokens, delta.completion_tokens
                if first_at is None and completion_tokens:
                    first_at, first_tokens = time.monotonic(), completion_tokens
                done = delta.finish_reason is not None
                text = filtered.feed(delta.text, final=done)
                if filtered.matched:
                    self.metrics.content_filtered.labels(door).inc()
                    answered = "content_filter"
                    yield Chunk(text, answered, prompt_tokens, completion_tokens)
                    return  # the finally below aborts the sequence in the engine
                if done:
                    answered = delta.finish_reason
                    if first_at is not None:
                        self.metrics.observe_tpot(
                            time.monotonic() - first_at, completion_tokens - first_tokens
                        )
                if text or done:
                    yield Chunk(text, delta.finish_reason, prompt_tokens, completion_tokens)
                if done:
                    return
            # The engine ended the stream without a finish reason (it was shut down).
            answered = "abort"
            yield Chunk(filtered.feed("", final=True), answered, prompt_tokens, completion_tokens)
        except EngineError:
            accepted = seen
            raise
        finally:
            await close_quietly(deltas)
            if accepted:  # a client that left, or a failed step, is an abort
                self.metrics.finished.labels(answered or "abort").inc()


async def close_quietly(iterator: AsyncIterator[Any]) -> None:
    """aclose() an async iterator even from a cancelled scope (anyio cancels level-triggered)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await aclose()
        except Exception:  # the engine's cleanup must never mask the request's own outcome
            log.exception("closing the engine stream failed")
