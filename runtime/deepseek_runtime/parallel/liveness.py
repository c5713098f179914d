"""Heartbeats through rank 0's store, so that a lost rank takes the replica down, never hangs it.

Every rank adds 1 to its counter every INTERVAL_S on its own connection to the store. Rank 0
watches every counter, a follower watches rank 0's; a counter that has not moved for TIMEOUT_S
(measured on the watcher's own clock: no clocks are compared across nodes), or a store that
cannot be reached (rank 0's process is gone), calls `on_lost` once with the reason. Rank 0 then
turns not ready and exits non-zero; a follower exits at once. A rank that hangs inside a
collective stops beating only if its whole process hangs; a dead one stops at once, and a
local child's exit is seen sooner still (ranks.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from deepseek_runtime.parallel.group import connect_store
from deepseek_runtime.parallel.topology import Topology

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
TIMEOUT_S = 10.0
STORE_TIMEOUT = timedelta(seconds=5)  # one store call; longer means rank 0 is gone or stuck


class Liveness:
    def __init__(
        self,
        topology: Topology,
        on_lost: Callable[[str], None],
        interval_s: float = INTERVAL_S,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.topology = topology
        self.rank = topology.ranks[0]
        self.on_lost = on_lost
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tp-liveness", daemon=True)

    def healthy(self) -> bool:
        return self.lost is None

    def start(self) -> Liveness:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watched(self) -> list[int]:
        return list(range(1, self.topology.world_size)) if self.rank == 0 else [0]

    def _run(self) -> None:
        try:
            store = connect_store(self.topology, STORE_TIMEOUT)
            watched = self._watched()
            seen = {r: (-1, time.monotonic()) for r in watched}  # (count, when it last moved)
            while not self._stop.wait(self.interval_s):
                store.add(f"alive/{self.rank}", 1)
                now = time.monotonic()
                for r in watched:
                    count = store.add(f"alive/{r}", 0)
                    if count != seen[r][0]:
                        seen[r] = (count, now)
                    elif now - seen[r][1] > self.timeout_s:
                        return self._lose(f"rank {r} silent for {now - seen[r][1]:.0f} s")
        except Exception as exc:  # the store is rank 0's: unreachable means rank 0 is gone
            if not self._stop.is_set():
                self._lose(f"rank {self.rank} lost the rendezvous store of rank 0: {exc}")

    def _lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
            log.error("tensor-parallel replica broken: %s", reason)
            self.on_lost(reason)
