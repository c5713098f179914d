"""Request admission rules (validation, the max_tokens policy) and observer calls. No torch.

The max_tokens policy, one for every door (the README's "max_tokens and the context"):
- a prompt that leaves no room for one new token is refused (PromptTooLongError, HTTP 400);
- an explicit max_tokens that does not fit beside the prompt is refused, naming the numbers:
  the client asked for something this model cannot give, and a silent clamp would hide it;
- no max_tokens means the rest of the context, at most `default_max_tokens` (a server
  setting), so no request runs unbounded (a drain, a KV reservation, a runaway loop).
A sequence that reaches its max_tokens finishes with "length".
"""

from __future__ import annotations

import logging
import time
from typing import Any

from deepseek_runtime.engine.protocol import (
    EngineObserver,
    GenerationRequest,
    InvalidRequestError,
    PromptTooLongError,
)
from deepseek_runtime.engine.sequence import Sequence

log = logging.getLogger(__name__)


def output_budget(
    prompt_tokens: int, max_tokens: int | None, max_model_len: int, default_max_tokens: int
) -> int:
    """The new tokens a request may generate (the policy above); PromptTooLongError if none."""
    if prompt_tokens >= max_model_len:
        raise PromptTooLongError(
            f"the prompt is {prompt_tokens} tokens; this model's context is {max_model_len} "
            "tokens and must leave room for at least one new token"
        )
    room = max_model_len - prompt_tokens
    if max_tokens is None:
        return min(room, default_max_tokens)
    if max_tokens > room:
        raise PromptTooLongError(
            f"this model's context is {max_model_len} tokens, but {prompt_tokens} prompt tokens "
            f"plus max_tokens={max_tokens} need {prompt_tokens + max_tokens}; ask for at most "
            f"{room} new tokens, or omit max_tokens for the rest of the context"
        )
    return max_tokens


def make_sequence(
    seq_id: int,
    request: GenerationRequest,
    max_model_len: int,
    vocab_size: int,
    eos_token_ids: frozenset[int],
    default_max_tokens: int,
) -> Sequence:
    """Validate a request and turn it into a Sequence; raises the errors front doors map."""
    prompt = tuple(request.prompt_token_ids)
    if not prompt:
        raise InvalidRequestError("the prompt must contain at least one token")
    bad = [t for t in prompt if not 0 <= t < vocab_size]
    if bad:
        raise InvalidRequestError(
            f"token ids {bad[:5]} are outside the vocabulary (size {vocab_size})"
        )
    budget = output_budget(len(prompt), request.params.max_tokens, max_model_len,
                           default_max_tokens)  # fmt: skip
    return Sequence(
        seq_id=seq_id,
        prompt_token_ids=prompt,
        params=request.params,
        max_tokens=budget,
        eos_token_ids=eos_token_ids,
        arrival_time=time.monotonic(),
        tenant=request.tenant,
    )


def notify(observer: EngineObserver | None, hook: str, *args: Any) -> None:
    """Call an observer hook; a broken metrics hook must never stop generation."""
    if observer is None:
        return
    try:
        getattr(observer, hook)(*args)
    except Exception:
        log.exception("EngineObserver.%s failed", hook)
