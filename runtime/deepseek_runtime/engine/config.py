"""Engine limits and knobs, checked once when built. No torch here."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(slots=True)
class EngineConfig:
    max_num_seqs: int = 32  # sequences in one decode batch (the "running" slots)
    max_num_batched_tokens: int = 4096  # padded prompt tokens in one prefill forward
    max_queue: int = 256  # waiting requests before QueueFullError (429)
    max_model_len: int | None = None  # cap below the model's own context; None = the model's
    default_max_tokens: int = 4096  # new tokens for a request that names no max_tokens (at most)
    kv_cache_tokens: int | None = None  # KV token budget; None = max_num_seqs * max_model_len
    torch_threads: int | None = None  # None = every core but one (the event loop needs one)
    stream_interval_tokens: int = 4  # wake a consumer after the first token, then every N
    warmup: bool = True  # run one short generation before is_ready() turns true
    tune_cpu_kernels: bool = True  # on CPU, time the lm_head layouts at start-up (cpu_kernels)
    retry_after_s: float = 1.0  # what QueueFullError tells clients to wait
    prefix_caching: bool = True  # reuse the KV of cached prompt prefixes (blocks.py)
    block_size: int = 16  # tokens per KV block: the granularity of reuse

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "max_queue", "default_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_model_len", "kv_cache_tokens", "torch_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None), got {value}")
        if self.block_size < 1:
            raise ValueError("block_size must be at least 1")
        if self.stream_interval_tokens < 1:
            raise ValueError("stream_interval_tokens must be at least 1")
        if self.max_num_batched_tokens < self.max_num_seqs:
            # A decode step feeds one token per running sequence through the same budget.
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must be >= 0")

    def resolved_torch_threads(self) -> int:
        """On 2 cores one thread for torch leaves one for HTTP and Triton's proxy."""
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, len(os.sched_getaffinity(0)) - 1)
