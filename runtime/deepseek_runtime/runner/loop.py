"""The threaded engine: one thread owns the model; any event loop in any thread submits to it.

step() = schedule -> run -> postprocess, as in nano-vllm. Requests cross into the engine thread
through an inbox guarded by a condition variable; results flow back through each request's
RequestStream (coalesced, woken with call_soon_threadsafe on the caller's own loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator
from typing import Protocol

import torch

from deepseek_runtime.engine.blocks import blocks_for
from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.output import OutputProcessor
from deepseek_runtime.engine.protocol import (
    ABORT_WAIT_S,
    EngineError,
    EngineObserver,
    EngineShuttingDownError,
    EngineStats,
    GenerationDelta,
    GenerationRequest,
    QueueFullError,
)
from deepseek_runtime.engine.requests import make_sequence
from deepseek_runtime.engine.scheduler import Scheduler
from deepseek_runtime.engine.sequence import Sequence
from deepseek_runtime.engine.step import StepInput
from deepseek_runtime.engine.stream import RequestStream
from deepseek_runtime.model.loader import LoadedModel
from deepseek_runtime.runner.cpu_kernels import tune_output_head
from deepseek_runtime.runner.model_runner import ModelRunner

log = logging.getLogger(__name__)


class Peers(Protocol):
    """The other tensor-parallel ranks (parallel/leader.py), told everything that changes
    their runner, in the engine thread's order: they run each step's forward on their shard."""

    def open(self, num_blocks: int, block_size: int, pad_token_id: int) -> None: ...
    def step(self, step: StepInput) -> None: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    def healthy(self) -> bool: ...


class LLMEngine:
    """Implements engine.protocol.Engine. Build with build_engine(), or LLMEngine(...).start()."""

    def __init__(
        self,
        loaded: LoadedModel,
        config: EngineConfig | None = None,
        observer: EngineObserver | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.peers = peers
        self.loaded = loaded
        self.model_name = loaded.model_name
        self.tokenizer = loaded.tokenizer
        self.max_model_len = min(loaded.max_model_len, self.config.max_model_len or 1 << 62)
        self.vocab_size = int(loaded.model.config.get_text_config().vocab_size)
        kv_tokens = self.config.kv_cache_tokens or self.config.max_num_seqs * self.max_model_len
        if kv_tokens < self.max_model_len:
            raise ValueError(f"kv_cache_tokens {kv_tokens} < max_model_len {self.max_model_len}")
        block_size = self.config.block_size
        # Whole blocks: a budget that is no multiple of the block size still holds the longest.
        kv_tokens = max(kv_tokens // block_size, blocks_for(self.max_model_len, block_size))
        kv_tokens *= block_size
        self.scheduler = Scheduler(
            self.config.max_num_seqs, self.config.max_num_batched_tokens, kv_tokens,
            block_size, self.config.prefix_caching,
        )  # fmt: skip
        self.runner = ModelRunner(loaded.model, self.scheduler.blocks.num_blocks, block_size,
                                  pad_token_id=loaded.pad_token_id)  # fmt: skip
        self.outputs = OutputProcessor(loaded.tokenizer, observer)
        self._eos = frozenset(loaded.eos_token_ids)
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._inbox: deque[Sequence] = deque()  # submitted, not yet seen by the engine thread
        self._aborts: list[int] = []
        self._accepting = True
        self._stop: str | None = None  # "drain" or "abort" once shutdown() was called
        self._ready = threading.Event()
        self._settled = threading.Event()  # ready, or failed while starting
        self._failure: BaseException | None = None  # set if the engine thread died
        self._thread = threading.Thread(target=self._loop, name="llm-engine", daemon=True)

    # --- the Engine protocol (any thread) ---

    def start(self) -> LLMEngine:
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until warmed up; False on timeout or if the engine failed to start."""
        self._settled.wait(timeout_s)
        return self.is_ready()

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def is_ready(self) -> bool:
        alive = self._ready.is_set() and self._thread.is_alive() and self._accepting
        return alive and (self.peers is None or self.peers.healthy())

    def stats(self) -> EngineStats:
        with self._cond:
            waiting = len(self._inbox) + self.scheduler.num_waiting
        blocks = self.scheduler.blocks
        usage = blocks.usage()
        return EngineStats(
            waiting=waiting,
            running=self.scheduler.num_running,
            max_running=self.config.max_num_seqs,
            kv_cache_usage=min(1.0, usage.used / usage.total),
            kv_blocks_used=usage.used,
            kv_blocks_cached=usage.cached,
            kv_blocks_total=usage.total,
            prefix_query_tokens=blocks.query_tokens,
            prefix_hit_tokens=blocks.hit_tokens,
        )

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationDelta, None]:
        """Stream deltas; closing the iterator or cancelling the task aborts the request."""
        seq_id = next(self._ids)
        seq = make_sequence(
            seq_id, request, self.max_model_len, self.vocab_size, self._eos,
            self.config.default_max_tokens,
        )  # fmt: skip
        stream = RequestStream(
            asyncio.get_running_loop(), seq.prompt_len, self.config.stream_interval_tokens
        )
        self._submit(seq, stream)
        try:
            while not stream.closed:
                yield await stream.next_delta()
        finally:
            if not stream.closed:
                self._abort(seq.seq_id)

    def shutdown(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop admitting; finish (drain) or abort in-flight requests; stop the thread."""
        with self._cond:
            self._accepting = False
            self._stop = "drain" if drain else "abort"
            self._cond.notify_all()
        if not self._thread.is_alive():
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            with self._cond:
                self._stop = "abort"  # draining took too long: end what is left
                self._cond.notify_all()
            self._thread.join(ABORT_WAIT_S)  # the loop sees the abort after one step

    def _submit(self, seq: Sequence, stream: RequestStream) -> None:
        with self._cond:
            if self._failure is not None:
                raise EngineError(f"the engine stopped: {self._failure}")
            if not self._accepting:
                raise EngineShuttingDownError("the engine is shutting down")
            if len(self._inbox) + self.scheduler.num_waiting >= self.config.max_queue:
                raise QueueFullError(
                    f"{self.config.max_queue} requests are already waiting",
                    self.config.retry_after_s,
                )
            self.outputs.streams[seq.seq_id] = stream
            self._inbox.append(seq)
            self._cond.notify()

    def _abort(self, seq_id: int) -> None:
        with self._cond:
            self._aborts.append(seq_id)
            self._cond.notify()

    # --- the engine thread ---

    def _loop(self) -> None:
        try:
            torch.set_num_threads(self.config.resolved_torch_threads())
            if self.peers is not None:
                blocks = self.scheduler.blocks
                self.peers.open(blocks.num_blocks, blocks.block_size, self.runner.pad_token_id)
            # Timed here: on this thread, with its thread count. Not with peers: a sharded head
            # gathers across ranks, and a timing taken on one rank would deadlock the others.
            if self.config.tune_cpu_kernels and self.peers is None:
                tune_output_head(self.loaded.model, self.config.max_num_seqs)
            if self.config.warmup:
                self._warmup()
            self._ready.set()
            self._settled.set()
            self._serve()
            if self.peers is not None:
                self.peers.close()
        except BaseException as exc:  # fail every waiting consumer rather than hang them
            log.exception("the engine thread died")
            with self._cond:
                self._failure, self._accepting = exc, False
                seq_ids = list(self.outputs.streams)
            self._settled.set()
            for seq_id in seq_ids:
                self.outputs.fail(seq_id, EngineError(f"the engine stopped: {exc}"))
            if self.peers is not None:
                with contextlib.suppress(Exception):  # a peer may be what failed
                    self.peers.close()
            raise

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not (self._inbox or self._aborts or self._stop or self.scheduler.has_work()):
                    self._cond.wait()
                while self._inbox:  # under the lock, so stats() never misses a waiting request
                    self.scheduler.add(self._inbox.popleft())
                aborts, self._aborts = self._aborts, []
                stop = self._stop
            for seq_id in aborts:
                self._drop(seq_id, deliver=False)
            if stop == "abort" or (stop == "drain" and not self.scheduler.has_work()):
                break
            if self.scheduler.has_work():
                self._guarded_step()
        for seq in [*self.scheduler.waiting, *self.scheduler.running]:
            self._drop(seq.seq_id, deliver=True)

    def _warmup(self) -> None:
        """One short generation through the real path, so the first request is not slow."""
        prompt = tuple(self.tokenizer.encode("Hello")) or (self.loaded.pad_token_id,)
        request = GenerationRequest("warmup", prompt)
        seq = make_sequence(-1, request, self.max_model_len, self.vocab_size, frozenset(), 2)
        self.outputs.muted = True
        self.scheduler.add(seq)
        while not seq.is_finished:
            self.step()
        self.outputs.muted = False
        self.scheduler.blocks.query_tokens = self.scheduler.blocks.hit_tokens = 0  # not traffic

    def _guarded_step(self) -> None:
        try:
            self.step()
        except Exception as exc:  # a failed forward must not take the server down with it
            log.exception("engine step failed; aborting the running requests")
            for seq in list(self.scheduler.running):
                self.outputs.fail(seq.seq_id, EngineError(f"generation failed: {exc}"))
                self._drop(seq.seq_id, deliver=False)
            self.runner.reset()
            if self.peers is not None:
                self.peers.reset()  # raises if a peer is gone: then the engine stops
            self.scheduler.reset()  # the pools' content is unknown now: cache nothing from it

    def step(self) -> None:
        batch = self.scheduler.schedule()
        if self.peers is not None:
            self.peers.step(batch.step)
        token_ids = self.runner.run(batch)
        self.scheduler.postprocess(batch, token_ids)
        self.outputs.process(batch)
        finished = self.scheduler.reap()
        self.runner.release([s.seq_id for s in finished])
        self.outputs.finish(finished)

    def _drop(self, seq_id: int, deliver: bool) -> None:
        """Abort one sequence (client gone, failure or shutdown) and free its KV blocks."""
        seq = self.scheduler.abort(seq_id)
        self.runner.release([seq_id])
        self.outputs.abort(seq_id, seq, deliver)


def build_engine(
    model_path: str | None = None,
    *,
    dtype: str = "auto",
    quantization: str = "none",
    config: EngineConfig | None = None,
    model_name: str | None = None,
    observer: EngineObserver | None = None,
    wait_ready: bool = True,
) -> LLMEngine:
    """Load a local model (None = the bundled SmolLM2 GGUF) and start an engine on it."""
    from deepseek_runtime.model.loader import load_model

    loaded = load_model(model_path, dtype=dtype, quantization=quantization, model_name=model_name)
    engine = LLMEngine(loaded, config, observer).start()
    if wait_ready and not engine.wait_ready():
        raise EngineError(f"the engine failed to start: {engine.failure}")
    return engine
