"""Ranks above 0: receive each step from rank 0 and run the same forward on this rank's shard.
The logits are discarded (rank 0 samples); the KV cache fills exactly as rank 0's does."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch

from deepseek_runtime.engine.step import StepInput
from deepseek_runtime.parallel.group import join
from deepseek_runtime.parallel.liveness import Liveness
from deepseek_runtime.parallel.steps import Open, Reset, StepChannel, Stop
from deepseek_runtime.parallel.topology import Topology
from deepseek_runtime.runner.model_runner import ModelRunner

log = logging.getLogger(__name__)


def _exit_now(reason: str) -> None:
    """Rank 0 is gone or silent: nothing this rank computes can reach a client any more."""
    log.error("leaving: %s", reason)
    os._exit(1)


def follow(channel: StepChannel, model: Any) -> int:
    """The step loop; returns 0 when rank 0 says stop."""
    first = channel.receive()
    if not isinstance(first, Open):
        raise RuntimeError(f"expected the runner's shape from rank 0, got {first!r}")
    runner = ModelRunner(model, first.num_blocks, first.block_size, first.pad_token_id)
    while True:
        message = channel.receive()
        if isinstance(message, StepInput):
            runner.forward_step(message)
        elif isinstance(message, Reset):
            runner.reset()
        elif isinstance(message, Stop):
            return 0


def run_follower(topology: Topology, load: Callable[[], Any], torch_threads: int) -> int:
    """One follower rank, start to end: join, load the shard, follow. Exits the process
    (non-zero) if rank 0 goes away."""
    torch.set_num_threads(torch_threads)
    group = join(topology)
    liveness = Liveness(topology, _exit_now).start()
    model = load()
    log.info("rank %d ready", group.rank)
    try:
        return follow(StepChannel(group.steps), model)
    except Exception as exc:  # a broken collective: rank 0 died or failed mid-step
        _exit_now(f"rank {group.rank}: {exc}")
        return 1
    finally:
        liveness.stop()
