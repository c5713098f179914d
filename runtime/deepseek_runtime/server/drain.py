"""One drain budget for the whole shutdown, shared by uvicorn, the Triton door and the engine.

The clock starts at the first SIGTERM: /ready turns 503 and new requests get 503 at once;
requests in flight on both doors go on until END_LEAD_S before the deadline, when the engine
ends what is left (its clients get finish_reason "abort" and a proper end of stream, not a cut
connection); then Triton and the process stop. So a shutdown takes at most
`drain_timeout_s + SHUTDOWN_MARGIN_S`, which the pod's terminationGracePeriodSeconds (set by
the operator) must cover: tests/unit/contract checks the two agree.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from deepseek_runtime.doors.triton.server import TRITON_EXIT_TIMEOUT_S
from deepseek_runtime.engine.protocol import ABORT_WAIT_S, Engine

log = logging.getLogger("deepseek_runtime")

END_LEAD_S = 1.0  # the engine ends leftovers this long before the deadline, so clients hear it
UVICORN_GRACE_S = 1  # uvicorn's own backstop, after the deadline, for a connection still open
PROCESS_EXIT_S = 3.0  # threads, tritonserver's children, interpreter exit
SHUTDOWN_MARGIN_S = UVICORN_GRACE_S + TRITON_EXIT_TIMEOUT_S + ABORT_WAIT_S + PROCESS_EXIT_S


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.at = clock() + seconds

    def left(self) -> float:
        return max(0.0, self.at - self.clock())


class Door(Protocol):
    def stop(self, drain_timeout_s: float) -> None: ...


def uvicorn_timeout_s(budget_s: float) -> int:
    """uvicorn's graceful-shutdown timeout: a backstop just after our own deadline."""
    return math.ceil(budget_s) + UVICORN_GRACE_S


async def end_at_deadline(engine: Callable[[], Engine | None], deadline: Deadline) -> None:
    """Abort whatever the engine still runs END_LEAD_S before the deadline."""
    await asyncio.sleep(max(0.0, deadline.left() - END_LEAD_S))
    if (running := engine()) is not None:
        if running.stats().running or running.stats().waiting:
            log.warning("drain budget spent: ending the requests still in flight")
        await anyio.to_thread.run_sync(running.shutdown, False, ABORT_WAIT_S)


async def stop_the_rest(doors: Sequence[Door], engine: Engine | None, deadline: Deadline) -> None:
    """After uvicorn has finished: each door, then the engine, within what is left."""
    for door in doors:
        await anyio.to_thread.run_sync(door.stop, deadline.left())
    if engine is not None:
        await anyio.to_thread.run_sync(engine.shutdown, True, deadline.left())
