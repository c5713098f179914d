"""What bench/prefix_cache.py runs: multi-turn chats over a shared system prompt, and prompts
that share nothing, through the engine (prefix reuse on or off) and through transformers' own
continuous-batching manager (the peer, with its block sharing).

Conversations are token ids, not text: turn t's prompt is the system prompt, then every earlier
(user message, answer) pair, then user message t, exactly as a chat client resends it; the
answers are what the server generated (greedy, EOS ignored, a fixed length), so every arm
computes the same tokens and the arms' outputs can be compared token for token.
"""

from __future__ import annotations

import asyncio
import queue
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatPlan:
    conversations: int = 16
    turns: int = 8
    system_tokens: int = 1500
    user_tokens: int = 24
    new_tokens: int = 32
    seed: int = 0

    def system_prompt(self, vocab: int) -> list[int]:
        rng = random.Random(self.seed)
        return [rng.randrange(3, vocab) for _ in range(self.system_tokens)]

    def user_messages(self, vocab: int) -> list[list[list[int]]]:
        """[conversation][turn] -> the user's message ids."""
        rng = random.Random(self.seed + 1)
        return [[[rng.randrange(3, vocab) for _ in range(self.user_tokens)]
                 for _ in range(self.turns)] for _ in range(self.conversations)]  # fmt: skip


@dataclass
class ArmResult:
    name: str
    wall_s: float
    tokens: int
    ttft_by_turn: list[list[float]] = field(default_factory=list)  # [turn] -> seconds
    outputs: list[list[list[int]]] = field(default_factory=list)  # [conversation][turn] -> ids
    hit_tokens: int = 0
    query_tokens: int = 0
    cpu_s: float = 0.0  # this process's CPU time over the run: what other load moves least

    @property
    def tok_per_cpu_s(self) -> float:
        return self.tokens / self.cpu_s

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s

    def ttft(self, first_turn: int, q: float) -> float:
        pooled = [t for turn in self.ttft_by_turn[first_turn:] for t in turn]
        return quantile(pooled, q)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


# --- the engine ---


async def _engine_turn(engine: Any, prompt: list[int], new_tokens: int) -> tuple[float, list[int]]:
    from deepseek_runtime.engine.protocol import GenerationRequest, SamplingParams

    params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    start, first = time.perf_counter(), None
    out: list[int] = []
    async for delta in engine.generate(GenerationRequest("bench", tuple(prompt), params)):
        if first is None and delta.token_ids:
            first = time.perf_counter() - start
        out += delta.token_ids
    return first or 0.0, out


def engine_chat(engine: Any, plan: ChatPlan, vocab: int, name: str) -> ArmResult:
    system, users = plan.system_prompt(vocab), plan.user_messages(vocab)
    result = ArmResult(name, 0.0, 0, [[] for _ in range(plan.turns)])
    result.outputs = [[] for _ in range(plan.conversations)]

    async def conversation(c: int) -> None:
        history = list(system)
        for turn in range(plan.turns):
            history += users[c][turn]
            ttft, answer = await _engine_turn(engine, history, plan.new_tokens)
            result.ttft_by_turn[turn].append(ttft)
            result.outputs[c].append(answer)
            result.tokens += len(answer)
            history += answer

    async def main() -> None:
        await asyncio.gather(*(conversation(c) for c in range(plan.conversations)))

    before = engine.stats()
    start = time.perf_counter()
    asyncio.run(main())
    result.wall_s = time.perf_counter() - start
    after = engine.stats()
    result.hit_tokens = after.prefix_hit_tokens - before.prefix_hit_tokens
    result.query_tokens = after.prefix_query_tokens - before.prefix_query_tokens
    return result


def engine_batch(engine: Any, prompts: list[list[int]], new_tokens: int, name: str) -> ArmResult:
    """Every prompt at once; tokens/s over the whole run."""

    async def main() -> list[tuple[float, list[int]]]:
        return await asyncio.gather(*(_engine_turn(engine, p, new_tokens) for p in prompts))

    start, cpu = time.perf_counter(), time.process_time()
    done = asyncio.run(main())
    wall = time.perf_counter() - start
    result = ArmResult(name, wall, sum(len(o) for _, o in done), [[t for t, _ in done]])
    result.cpu_s = time.process_time() - cpu
    result.outputs = [[o] for _, o in done]
    return result


# --- the peer: transformers' ContinuousBatchingManager ---


class PeerManager:
    """transformers' continuous batching with block sharing, one request stream per caller."""

    def __init__(self, model: Any, new_tokens: int, max_batch_tokens: int, num_blocks: int):
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1)
        cb_config = ContinuousBatchingConfig(allow_block_sharing=True, num_blocks=num_blocks,
                                             max_batch_tokens=max_batch_tokens)  # fmt: skip
        self.manager = model.init_continuous_batching(
            generation_config=config, continuous_batching_config=cb_config
        )
        self.new_tokens = new_tokens
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._lock = threading.Lock()
        self._running = True
        self.manager.start()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
        self._dispatcher.start()

    def _dispatch(self) -> None:
        while self._running:
            out = self.manager.get_result(timeout=0.05)
            if out is None:
                continue
            with self._lock:
                box = self._queues.setdefault(out.request_id, queue.Queue())
            box.put(out)

    def turn(self, prompt: list[int], request_id: str) -> tuple[float, list[int]]:
        with self._lock:
            box = self._queues.setdefault(request_id, queue.Queue())
        start, first = time.perf_counter(), None
        self.manager.add_request(prompt, request_id=request_id, max_new_tokens=self.new_tokens,
                                 streaming=True, eos_token_id=-1)  # fmt: skip
        while True:
            out = box.get(timeout=600)
            if first is None and out.generated_tokens:
                first = time.perf_counter() - start
            if out.is_finished():
                if out.error:
                    raise RuntimeError(out.error)
                with self._lock:
                    self._queues.pop(request_id, None)
                return first or 0.0, list(out.generated_tokens)

    def stop(self) -> None:
        self._running = False
        self.manager.stop(block=True)
        self._dispatcher.join(5)


def peer_chat(peer: PeerManager, plan: ChatPlan, vocab: int) -> ArmResult:
    system, users = plan.system_prompt(vocab), plan.user_messages(vocab)
    result = ArmResult("transformers continuous batching (block sharing)", 0.0, 0,
                       [[] for _ in range(plan.turns)])  # fmt: skip
    result.outputs = [[] for _ in range(plan.conversations)]
    lock = threading.Lock()

    def conversation(c: int) -> None:
        history = list(system)
        for turn in range(plan.turns):
            history += users[c][turn]
            ttft, answer = peer.turn(list(history), f"c{c}-t{turn}")
            with lock:
                result.ttft_by_turn[turn].append(ttft)
                result.tokens += len(answer)
            result.outputs[c].append(answer)
            history += answer

    threads = [threading.Thread(target=conversation, args=(c,)) for c in range(plan.conversations)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - start
    return result
