"""Heartbeats through a real TCPStore: a silent rank, or a lost store, ends the replica."""

from __future__ import annotations

import threading

from devkit.ports import free_port

from deepseek_runtime.parallel.group import connect_store
from deepseek_runtime.parallel.liveness import STORE_TIMEOUT, Liveness
from deepseek_runtime.parallel.topology import topology


def test_rank_0_reports_a_follower_that_never_beats() -> None:
    place = topology(2, free_port(), {})
    store = connect_store(place, STORE_TIMEOUT, rank0=True)  # what rank 0's group serves
    lost = threading.Event()
    reasons: list[str] = []

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        lost.set()

    watcher = Liveness(place, on_lost, interval_s=0.05, timeout_s=0.5).start()
    assert lost.wait(10)
    assert len(reasons) == 1 and reasons[0].startswith("rank 1 silent for")
    assert not watcher.healthy()
    del store


def test_a_beating_follower_keeps_rank_0_healthy_until_it_stops() -> None:
    place = topology(2, free_port(), {})
    store = connect_store(place, STORE_TIMEOUT, rank0=True)
    lost = threading.Event()
    leader = Liveness(place, lambda _: lost.set(), interval_s=0.05, timeout_s=0.5).start()
    follower = Liveness(place.with_rank(1), lambda _: None, interval_s=0.05, timeout_s=5).start()
    assert not lost.wait(1.5)  # three timeouts' worth of beats
    assert leader.healthy()
    follower.stop()
    assert lost.wait(10)
    del store


def test_a_follower_leaves_when_rank_0_stops_beating() -> None:
    place = topology(2, free_port(), {})
    store = connect_store(place, STORE_TIMEOUT, rank0=True)
    lost = threading.Event()
    reasons: list[str] = []
    Liveness(place.with_rank(1), lambda r: (reasons.append(r), lost.set()),
             interval_s=0.05, timeout_s=0.5).start()  # fmt: skip
    assert lost.wait(10)
    assert reasons[0].startswith("rank 0 silent for")
    del store
