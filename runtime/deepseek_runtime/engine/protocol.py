"""The contract between the engine and its front doors (OpenAI HTTP, Triton). No torch here.

Front doors build a `GenerationRequest`, iterate `Engine.generate(request)` and turn each
`GenerationDelta` into their own wire format. Closing the iterator early (a client that went
away) aborts the sequence and frees its slot. The engine is shared by every front door and
every event loop: `generate` may be called from any asyncio loop in any thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length", "abort", "content_filter"]
# How long Engine.shutdown waits, after its drain time, for the aborts to end the engine's
# thread (one step at most).
ABORT_WAIT_S = 5.0


class EngineError(Exception):
    """Base class for errors a front door maps to an HTTP status."""

    status_code = 500


class QueueFullError(EngineError):
    """The waiting queue is at its bound: answer 429 with Retry-After."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PromptTooLongError(EngineError):
    """The prompt leaves no room, or prompt plus an explicit max_tokens exceeds the model's
    context: answer 400 (the message names the numbers)."""

    status_code = 400


class InvalidRequestError(EngineError):
    """Sampling parameters out of range: answer 400."""

    status_code = 400


class EngineShuttingDownError(EngineError):
    """The engine is draining and takes no new work: answer 503."""

    status_code = 503


# Below these, sampling IS greedy decoding, and dividing logits by such a temperature (or
# renormalizing such a nucleus) overflows float32 to inf/NaN: such requests decode greedily.
GREEDY_BELOW_TEMPERATURE = 1e-5
GREEDY_BELOW_TOP_P = 1e-6


@dataclass(slots=True, frozen=True)
class SamplingParams:
    max_tokens: int | None = None  # None: the rest of the context, at most the server's default
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidRequestError("temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidRequestError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise InvalidRequestError("top_k must be >= 0")
        if len(self.stop) > 16:
            raise InvalidRequestError("at most 16 stop strings")

    @property
    def greedy(self) -> bool:
        return (
            self.temperature < GREEDY_BELOW_TEMPERATURE
            or self.top_p < GREEDY_BELOW_TOP_P
            or self.top_k == 1
        )


@dataclass(slots=True, frozen=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams = field(default_factory=SamplingParams)
    # Whose cached prefixes this request may reuse (the API key's name): never another's.
    tenant: str = ""


@dataclass(slots=True)
class GenerationDelta:
    """What one engine step produced for one request (tokens may be coalesced)."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True, frozen=True)
class EngineStats:
    waiting: int  # the HPA's queue gauge: requests admitted but not yet scheduled
    running: int
    max_running: int
    kv_cache_usage: float  # 0..1 of the KV blocks, referenced by running sequences now
    kv_blocks_used: int = 0  # referenced by running sequences
    kv_blocks_cached: int = 0  # unreferenced, kept for prefix reuse (evictable)
    kv_blocks_total: int = 0
    prefix_query_tokens: int = 0  # prompt tokens looked up in the prefix cache, ever
    prefix_hit_tokens: int = 0  # of which found (their KV reused), ever


@dataclass(slots=True, frozen=True)
class FinishedRequest:
    """What the engine reports about a request it has finished (or aborted)."""

    prompt_tokens: int
    completion_tokens: int
    seconds_since_arrival: float
    finish_reason: FinishReason


class EngineObserver(Protocol):
    """Hooks the metrics layer implements; the engine calls them from its own thread."""

    def on_step(self, batch_size: int, prefill_tokens: int, decode_tokens: int) -> None: ...
    def on_first_token(self, seconds_since_arrival: float) -> None: ...
    def on_finish(self, finished: FinishedRequest) -> None: ...


class Engine(Protocol):
    model_name: str
    max_model_len: int
    tokenizer: Any  # a transformers tokenizer: encode, decode, apply_chat_template

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]: ...
    def stats(self) -> EngineStats: ...
    def is_ready(self) -> bool: ...
    def shutdown(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop admitting; let in-flight requests finish for up to timeout_s (drain) or not,
        then abort the rest (their streams end with "abort"): returns within about
        timeout_s + ABORT_WAIT_S."""
