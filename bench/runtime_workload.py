"""What bench/runtime.py measures: one mode at one concurrency in one round (Run, Sample),
the CPU it costs, and the plan of a whole run."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

SERVED_NAME = "bench-model"  # a valid Triton model name as it is
ONE = "generate one-at-a-time"
STATIC = "generate static batch"
ALL_CORES = f"generate static batch, {os.cpu_count()} threads"


@dataclass
class Sample:
    ttft_s: float
    tokens: int


@dataclass
class Run:
    """One mode at one concurrency in one round."""

    mode: str  # "generate one-at-a-time" | "generate static batch" | "openai" | "triton"
    clients: int  # concurrent clients (the batch size for a static batch)
    samples: list[Sample]
    wall_s: float
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    steps: float = 0.0  # forward passes (engine steps, or generate's decoding steps)
    step_seqs: float = 0.0  # sequences summed over those steps
    engine_ttft_s: float = float("nan")  # mean arrival in the engine -> first token (served)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


class CpuMeter:
    """CPU seconds used by this process (the client) and by the server's process tree."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None

    def _server_cpu(self) -> float:
        if self.server is None:
            return 0.0
        total = 0.0
        for proc in [self.server, *self.server.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    @contextlib.contextmanager
    def measure(self, run_box: list[Run]) -> Iterator[None]:
        c0, s0 = time.process_time(), self._server_cpu()
        yield
        for run in run_box:
            run.client_cpu_s = time.process_time() - c0
            run.server_cpu_s = self._server_cpu() - s0


@dataclass(frozen=True)
class Variant:
    dtype: str
    quantization: str

    @property
    def label(self) -> str:
        return f"{self.dtype}/{self.quantization}"


@dataclass
class Plan:
    rounds: int
    new_tokens: int
    prompt_tokens: int
    levels: list[int]
    requests: dict[int, int]  # served requests per concurrency level (and prompts one-at-a-time)
    server_args: list[str] = field(default_factory=list)  # appended to `serve`
