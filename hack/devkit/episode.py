"""A scaling episode, sampled: every couple of seconds, what the HPA sees (the queue gauge per pod,
from Prometheus) and what it did (the Deployment's desired and ready replicas)."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field


def prometheus_query(base: str, query: str) -> dict[str, float]:
    """An instant query; returns {pod (or the series' labels): value}."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus query {query!r} failed: {body}")
    out = {}
    for series in body["data"]["result"]:
        labels = series["metric"]
        out[labels.get("pod") or json.dumps(labels, sort_keys=True)] = float(series["value"][1])
    return out


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    desired: int  # the Deployment's spec.replicas: what the HPA asked for
    ready: int  # its readyReplicas
    queue: dict[str, float]  # deepseek_requests_waiting per pod, as Prometheus scraped it


@dataclass
class Sampler:
    """Calls ``replicas`` (-> desired, ready) and ``queue`` every ``interval`` seconds in a
    thread; a failed call is skipped, not fatal (an API hiccup should not end the episode)."""

    replicas: Callable[[], tuple[int, int]]
    queue: Callable[[], dict[str, float]]
    interval: float = 2.0
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()

    def start(self) -> Sampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.samples

    def at(self, monotonic: float) -> float:
        return monotonic - self.t0

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                desired, ready = self.replicas()
                queue = self.queue()
            except Exception as error:  # recorded for the report, the episode goes on
                self.errors.append(f"{self.at(now):.0f}s: {error}")
            else:
                self.samples.append(Sample(self.at(now), desired, ready, queue))
            self._stop.wait(self.interval)
