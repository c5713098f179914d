"""One request's life inside the engine: tokens, limits, text and stop strings. No torch here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from deepseek_runtime.engine.protocol import FinishReason, SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    FINISHED = enum.auto()


@dataclass(slots=True)
class StopText:
    """Output text with stop strings cut off and a hold-back so emitted text is never retracted.

    While stop strings are set, the last `len(longest stop) - 1` characters stay unsent: they
    could be the start of a stop string that the next token completes. Only unsent text is
    kept (sent text can no longer start a match), so each token costs the same however long
    the output grows.
    """

    stops: tuple[str, ...] = ()
    pending: str = ""  # generated text not yet handed to the consumer

    @property
    def holdback(self) -> int:
        return max((len(s) for s in self.stops), default=1) - 1

    def add(self, delta: str) -> bool:
        """Append text; return True (and cut the text before it) when a stop string appears."""
        # No stop string matched before, so a new match must end inside `delta`.
        start = max(0, len(self.pending) - self.holdback)
        self.pending += delta
        found = [i for i in (self.pending.find(s, start) for s in self.stops if s) if i >= 0]
        if not found:
            return False
        self.pending = self.pending[: min(found)]
        return True

    def take(self, final: bool) -> str:
        end = len(self.pending) if final else max(0, len(self.pending) - self.holdback)
        out, self.pending = self.pending[:end], self.pending[end:]
        return out


@dataclass(slots=True, eq=False)
class Sequence:
    seq_id: int
    prompt_token_ids: tuple[int, ...]
    params: SamplingParams
    max_tokens: int  # params.max_tokens, clamped to the context that is left
    eos_token_ids: frozenset[int] = frozenset()
    arrival_time: float = 0.0
    output_token_ids: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    finish_reason: FinishReason | None = None
    first_token_time: float | None = None
    output: StopText = field(default_factory=StopText)
    tenant: str = ""  # whose prefixes this sequence may reuse (the API key; blocks.py)
    cached_tokens: int = 0  # prompt tokens whose KV was found in the cache at admission

    def __post_init__(self) -> None:
        if not self.prompt_token_ids:
            raise ValueError("a sequence needs at least one prompt token")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.output = StopText(stops=self.params.stop)

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def kv_reservation(self) -> int:
        """Tokens of KV this sequence may come to hold; admission reserves all of it up front."""
        return self.prompt_len + self.max_tokens

    def token_ids(self, count: int) -> list[int]:
        """The first `count` tokens, prompt then output."""
        prompt = self.prompt_token_ids
        if count <= len(prompt):
            return list(prompt[:count])
        return [*prompt, *self.output_token_ids[: count - len(prompt)]]

    @property
    def last_token_id(self) -> int:
        return self.output_token_ids[-1] if self.output_token_ids else self.prompt_token_ids[-1]

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def append_token(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        if not self.params.ignore_eos and token_id in self.eos_token_ids:
            self.finish("stop")
        elif len(self.output_token_ids) >= self.max_tokens:
            self.finish("length")

    def add_text(self, delta: str) -> None:
        # Text comes after append_token: a stop string on the last allowed token is a "stop".
        if self.output.add(delta) and self.finish_reason in (None, "length"):
            self.status = SequenceStatus.FINISHED
            self.finish_reason = "stop"

    def finish(self, reason: FinishReason) -> None:
        """The first reason wins (an abort after EOS stays "stop")."""
        if self.status is not SequenceStatus.FINISHED:
            self.status = SequenceStatus.FINISHED
            self.finish_reason = reason
