"""A small engine that implements `engine.protocol.Engine` without torch, for fast tests.

One character is one token. The reply is scripted (by default it echoes the last user line),
so tests can assert exact text, stop strings, reasoning tags, content filters and queueing.
Like the real engine it may be driven from any asyncio loop in any thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from deepseek_runtime.engine import protocol as p
from deepseek_runtime.engine.requests import output_budget

BOS, EOS = 1, 2


class FakeTokenizer:
    """Characters as token ids (offset past the special ids); a plain chat template."""

    eos_token_id = EOS
    bos_token_id = BOS
    chat_template = "fake"  # truthy: the server calls apply_chat_template
    vocab_size = 0x110000 + 3

    def __init__(self, think_tags: bool = False) -> None:
        self.think_tags = think_tags

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [ord(c) + 3 for c in text]
        return [BOS, *ids] if add_special_tokens else ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i - 3) for i in ids if i >= 3)

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = False,
        add_generation_prompt: bool = True,
    ) -> str:
        text = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)
        return text + ("<|assistant|>" if add_generation_prompt else "")

    def get_vocab(self) -> dict[str, int]:
        return {"<think>": 10, "</think>": 11} if self.think_tags else {"a": 100}


def echo_reply(prompt: str) -> str:
    """'You said: <the last line of the prompt, without chat markup>'."""
    last = prompt.removesuffix("<|assistant|>").rstrip().split("\n")[-1]
    return f"You said: {last.split('|>')[-1]}"


class FakeEngine:
    def __init__(
        self,
        reply: Callable[[str], str] = echo_reply,
        *,
        model_name: str = "fake-model",
        max_model_len: int = 512,
        default_max_tokens: int = 64,
        max_running: int = 4,
        max_queue: int = 64,
        token_delay_s: float = 0.002,
        observer: p.EngineObserver | None = None,
        think_tags: bool = False,
        fail_after: int | None = None,
    ) -> None:
        self.model_name = model_name
        self.max_model_len = max_model_len
        self.default_max_tokens = default_max_tokens
        self.tokenizer: Any = FakeTokenizer(think_tags)
        self.reply = reply
        self.max_running, self.max_queue = max_running, max_queue
        self.token_delay_s = token_delay_s
        self.observer = observer
        self.fail_after = fail_after  # raise EngineError after this many tokens (a runner crash)
        self.waiting = self.running = 0
        self.aborted = 0
        self.submitted: list[p.GenerationRequest] = []
        self._lock = threading.Lock()
        self._accepting = True

    def stats(self) -> p.EngineStats:
        with self._lock:
            return p.EngineStats(self.waiting, self.running, self.max_running, 0.0)

    def is_ready(self) -> bool:
        return self._accepting

    def shutdown(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        self._accepting = False
        deadline = time.monotonic() + timeout_s
        while drain and (self.running or self.waiting) and time.monotonic() < deadline:
            time.sleep(0.01)

    async def _admit(self) -> None:
        with self._lock:
            if not self._accepting:
                raise p.EngineShuttingDownError("engine is shutting down")
            if self.waiting >= self.max_queue:
                raise p.QueueFullError("queue full", retry_after_s=1.0)
            self.waiting += 1
        try:
            while True:
                with self._lock:
                    if self.running < self.max_running:
                        self.waiting -= 1
                        self.running += 1
                        return
                await asyncio.sleep(0.002)
        except BaseException:
            with self._lock:
                self.waiting -= 1
            raise

    async def generate(self, request: p.GenerationRequest) -> AsyncIterator[p.GenerationDelta]:
        arrival = time.monotonic()
        # The engine's own max_tokens policy (refusals included), not a copy of it.
        limit = output_budget(len(request.prompt_token_ids), request.params.max_tokens,
                              self.max_model_len, self.default_max_tokens)  # fmt: skip
        self.submitted.append(request)
        await self._admit()
        prompt = self.tokenizer.decode(list(request.prompt_token_ids))
        target = self.reply(prompt)
        params, n_prompt = request.params, len(request.prompt_token_ids)
        out, reason = "", "abort"
        try:
            for i, char in enumerate(target):
                await asyncio.sleep(self.token_delay_s)
                if i == 0 and self.observer:
                    self.observer.on_first_token(time.monotonic() - arrival)
                if self.observer:
                    self.observer.on_step(self.running, 0, 1)
                if i == self.fail_after:
                    raise p.EngineError("generation failed: the runner crashed")
                out += char
                delta = p.GenerationDelta(char, [ord(char) + 3], None, n_prompt, i + 1)
                stop = next((s for s in params.stop if s in out), None)
                if stop is not None:  # like a real engine: the stop string is not returned
                    delta.text = out[: out.index(stop)][len(out) - 1 :]
                    reason = delta.finish_reason = "stop"
                elif i + 1 == len(target):
                    reason = delta.finish_reason = "stop"
                elif i + 1 >= limit:
                    reason = delta.finish_reason = "length"
                yield delta
                if delta.finish_reason:
                    return
            reason = "stop"
            yield p.GenerationDelta("", [], "stop", n_prompt, 0)
        finally:
            with self._lock:
                self.running -= 1
                if reason == "abort":
                    self.aborted += 1
            if self.observer:
                elapsed = time.monotonic() - arrival
                self.observer.on_finish(p.FinishedRequest(n_prompt, len(out), elapsed, reason))
