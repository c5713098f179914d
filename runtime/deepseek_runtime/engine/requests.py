"""Request admission rules (validation, context clamping) and observer calls. No torch here.

Context policy: a prompt that leaves no room for one new token is rejected
(PromptTooLongError, HTTP 400); otherwise max_tokens is clamped to the context that is left and
a sequence that reaches it finishes with "length". Clients that leave max_tokens at its default
on a long prompt get an answer rather than an error, as with most OpenAI-compatible servers'
"max_tokens defaults to the rest of the context".
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


def make_sequence(
    seq_id: int,
    request: GenerationRequest,
    max_model_len: int,
    vocab_size: int,
    eos_token_ids: frozenset[int],
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
    if len(prompt) >= max_model_len:
        raise PromptTooLongError(
            f"the prompt has {len(prompt)} tokens; this model's context is {max_model_len} "
            "tokens and must leave room for at least one new token"
        )
    return Sequence(
        seq_id=seq_id,
        prompt_token_ids=prompt,
        params=request.params,
        max_tokens=min(request.params.max_tokens, max_model_len - len(prompt)),
        eos_token_ids=eos_token_ids,
        arrival_time=time.monotonic(),
    )


def notify(observer: EngineObserver | None, hook: str, *args: Any) -> None:
    """Call an observer hook; a broken metrics hook must never stop generation."""
    if observer is None:
        return
    try:
        getattr(observer, hook)(*args)
    except Exception:
        log.exception("EngineObserver.%s failed", hook)
