"""One drain budget for the whole shutdown (issue 15, item 9): uvicorn, the Triton door and the
engine share it; the engine ends what is left just before the deadline."""

from __future__ import annotations

import asyncio

from deepseek_runtime.engine.protocol import ABORT_WAIT_S, EngineStats
from deepseek_runtime.server.drain import (
    END_LEAD_S,
    Deadline,
    end_at_deadline,
    stop_the_rest,
    uvicorn_timeout_s,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowDoor:
    """A door whose in-flight requests take `busy_s` to finish (or the time it is given)."""

    def __init__(self, clock: Clock, busy_s: float) -> None:
        self.clock, self.busy_s = clock, busy_s
        self.given: list[float] = []

    def stop(self, drain_timeout_s: float) -> None:
        self.given.append(drain_timeout_s)
        self.clock.now += min(self.busy_s, drain_timeout_s)


class Engine:
    def __init__(self, clock: Clock | None = None, running: int = 1) -> None:
        self.clock, self.running = clock, running
        self.calls: list[tuple[bool, float]] = []

    def stats(self) -> EngineStats:
        return EngineStats(0, self.running, 4, 0.0)

    def shutdown(self, drain: bool = True, timeout_s: float = 30.0) -> None:
        self.calls.append((drain, timeout_s))
        if self.clock is not None:
            self.clock.now += timeout_s


def test_the_doors_and_the_engine_share_what_is_left_of_one_budget() -> None:
    clock = Clock()
    deadline = Deadline(30.0, clock)
    clock.now += 12.0  # uvicorn's graceful shutdown took 12 s of it
    doors = [SlowDoor(clock, busy_s=100.0), SlowDoor(clock, busy_s=100.0)]
    engine = Engine(clock)
    asyncio.run(stop_the_rest(doors, engine, deadline))  # type: ignore[arg-type]
    assert doors[0].given == [18.0] and doors[1].given == [0.0]
    assert engine.calls == [(True, 0.0)]
    assert clock.now - 100.0 == 30.0  # never more than the budget (the old code: 12 + 3 x 30)


def test_a_quick_drain_leaves_the_engine_the_rest() -> None:
    clock = Clock()
    deadline = Deadline(30.0, clock)
    door, engine = SlowDoor(clock, busy_s=4.0), Engine()
    asyncio.run(stop_the_rest([door], engine, deadline))  # type: ignore[arg-type]
    assert door.given == [30.0] and engine.calls == [(True, 26.0)]


def test_the_engine_ends_what_is_left_just_before_the_deadline() -> None:
    engine = Engine()
    deadline = Deadline(END_LEAD_S + 0.05)
    asyncio.run(end_at_deadline(lambda: engine, deadline))  # type: ignore[arg-type, return-value]
    assert engine.calls == [(False, ABORT_WAIT_S)]  # abort: streams end with "abort"
    asyncio.run(end_at_deadline(lambda: None, Deadline(0)))  # no engine yet: nothing to end


def test_uvicorn_waits_just_past_the_deadline_never_forever() -> None:
    assert uvicorn_timeout_s(30.0) == 31 and uvicorn_timeout_s(2.5) == 4
    assert uvicorn_timeout_s(0.0) == 1  # 0 used to mean None: wait for connections forever


def test_deadline_counts_down_to_zero() -> None:
    clock = Clock()
    deadline = Deadline(5.0, clock)
    clock.now += 2.0
    assert deadline.left() == 3.0
    clock.now += 10.0
    assert deadline.left() == 0.0
