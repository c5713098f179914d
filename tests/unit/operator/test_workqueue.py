from __future__ import annotations

from deepseek_operator.workqueue import Work, WorkQueue

A, B = ("ai", "a"), ("ai", "b")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_twice_is_one_entry_with_the_larger_work() -> None:
    queue = WorkQueue(Clock())
    queue.add(A, Work.REFRESH)
    queue.add(A, Work.REPAIR)
    queue.add(A, Work.REFRESH)
    assert queue.pending() == {A: Work.REPAIR}
    assert queue.take(0) == (A, Work.REPAIR)
    assert queue.take(0) is None


def test_keys_come_out_when_due_earliest_first() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add(A, Work.REFRESH, delay_s=5)
    queue.add(B, Work.REFRESH, delay_s=2)
    assert queue.take(0) is None
    clock.now += 2
    assert queue.take(0) == (B, Work.REFRESH)
    assert queue.take(0) is None
    queue.add(A, Work.REFRESH)  # an event for a key waiting on a delay: due now
    assert queue.take(0) == (A, Work.REFRESH)


def test_failures_come_back_with_a_growing_delay_until_one_succeeds() -> None:
    clock = Clock()
    queue = WorkQueue(clock, first_retry_s=1, max_retry_s=4)
    delays = []
    for _ in range(4):
        delays.append(queue.done(A, Work.REPAIR, ok=False))
        clock.now += 10
        assert queue.take(0) == (A, Work.REPAIR)
    assert delays == [1, 2, 4, 4]
    queue.done(A, Work.REPAIR, ok=True)
    assert queue.done(A, Work.REPAIR, ok=False) == 1


def test_forget_drops_a_gone_object() -> None:
    queue = WorkQueue(Clock())
    queue.done(A, Work.REPAIR, ok=False)
    queue.forget(A)
    assert queue.pending() == {}
    assert queue.done(A, Work.REPAIR, ok=False) == 1  # its failures were forgotten too


def test_one_lock_per_key() -> None:
    queue = WorkQueue(Clock())
    assert queue.lock(A) is queue.lock(A)
    assert queue.lock(A) is not queue.lock(B)
