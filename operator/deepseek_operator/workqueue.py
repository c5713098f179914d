"""Keys of DeepSeekDeployments waiting to be reconciled: deduplicated, retried with backoff,
one at a time per key.

Child events, the periodic drift repair and failed attempts all add keys here; one worker
(worker.py) drains it. A key added again before it is taken keeps one entry, with the earlier
due time and the larger piece of work. ``lock(key)`` serialises everything done for one key,
whichever thread does it (the worker, or a kopf handler reconciling at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum

Key = tuple[str, str]  # namespace, name


class Work(IntEnum):
    """What a key needs; the larger covers the smaller."""

    REFRESH = 1  # recompute the status from the children
    REPAIR = 2  # apply every child, then the status


class WorkQueue:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        first_retry_s: float = 1.0,
        max_retry_s: float = 300.0,
    ) -> None:
        self._clock = clock
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._changed = threading.Condition()
        self._due: dict[Key, tuple[float, Work]] = {}
        self._failures: dict[Key, int] = {}
        self._locks: dict[Key, threading.Lock] = {}

    def add(self, key: Key, work: Work, delay_s: float = 0.0) -> None:
        due = self._clock() + delay_s
        with self._changed:
            if key in self._due:
                before, queued = self._due[key]
                due, work = min(due, before), max(work, queued)
            self._due[key] = (due, work)
            self._changed.notify()

    def take(self, timeout_s: float) -> tuple[Key, Work] | None:
        """The earliest key that is due, waiting at most ``timeout_s`` for one."""
        deadline = self._clock() + timeout_s
        with self._changed:
            while True:
                now = self._clock()
                if self._due:
                    key = min(self._due, key=lambda k: self._due[k][0])
                    due, work = self._due[key]
                    if due <= now:
                        del self._due[key]
                        return key, work
                    wait = min(due, deadline) - now
                else:
                    wait = deadline - now
                if wait <= 0:
                    return None
                self._changed.wait(wait)

    def done(self, key: Key, work: Work, ok: bool) -> float | None:
        """Record how ``work`` on ``key`` went; a failure comes back after a growing delay,
        which is returned."""
        with self._changed:
            if ok:
                self._failures.pop(key, None)
                return None
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self._first_retry_s * 2 ** (failures - 1), self._max_retry_s)
            self.add(key, work, delay)
            return delay

    def forget(self, key: Key) -> None:
        """The object is gone: no retries. (Its lock stays: a thread may be about to take it,
        and a lock per object ever seen costs next to nothing.)"""
        with self._changed:
            self._due.pop(key, None)
            self._failures.pop(key, None)

    def lock(self, key: Key) -> threading.Lock:
        with self._changed:
            return self._locks.setdefault(key, threading.Lock())

    def pending(self) -> dict[Key, Work]:
        with self._changed:
            return {key: work for key, (_, work) in self._due.items()}
