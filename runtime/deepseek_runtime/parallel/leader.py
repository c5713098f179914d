"""Rank 0: the engine's Peers (runner/loop.py). Before each forward the engine sends the step
to every other rank, so that all run the same forward, each on its shard."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from deepseek_runtime.engine.step import StepInput
from deepseek_runtime.parallel.group import Group, join
from deepseek_runtime.parallel.liveness import Liveness
from deepseek_runtime.parallel.steps import Open, Reset, StepChannel, Stop
from deepseek_runtime.parallel.topology import Topology

log = logging.getLogger(__name__)


class Leader:
    def __init__(self, group: Group, liveness: Liveness) -> None:
        self.group = group
        self.liveness = liveness
        self.channel = StepChannel(group.steps)
        self._closed = False

    def open(self, num_blocks: int, block_size: int, pad_token_id: int) -> None:
        self.channel.send(Open(num_blocks, block_size, pad_token_id))

    def step(self, step: StepInput) -> None:
        self.channel.send(step)

    def reset(self) -> None:
        self.channel.send(Reset())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.liveness.stop()  # followers leave now: their silence is expected
        try:
            self.channel.send(Stop())
        except RuntimeError as exc:  # a follower is gone: the replica is ending anyway
            log.warning("could not tell the other ranks to stop: %s", exc)

    def healthy(self) -> bool:
        return self.liveness.healthy()


def lead(
    topology: Topology, on_lost: Callable[[str], None], load: Callable[[], Any]
) -> tuple[Any, Leader]:
    """Join as rank 0, watch the others, load this rank's shard: (what `load` returned, the
    engine's peers)."""
    group = join(topology)
    liveness = Liveness(topology, on_lost).start()
    return load(), Leader(group, liveness)
