"""Prometheus metrics for the runtime, served on /metrics of the OpenAI port.

`deepseek_requests_waiting` is the HPA's queue metric. It is read from `engine.stats()` at
scrape time, not pushed: Triton's own pending count is blind for decoupled models, and a
pushed gauge could go stale between steps. The class also implements the engine's
`EngineObserver`; the engine calls those hooks from its own thread (prometheus-client is
thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from deepseek_runtime.engine.protocol import EngineStats, FinishReason

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
_TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _EngineStatsCollector(Collector):
    """One consistent `stats()` snapshot per scrape for all engine gauges."""

    def __init__(self, stats: Callable[[], EngineStats | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.stats() or EngineStats(waiting=0, running=0, max_running=0, kv_cache_usage=0.0)
        yield GaugeMetricFamily(
            "deepseek_requests_waiting",
            "Requests admitted by the engine but not yet scheduled (the autoscaling queue)",
            value=s.waiting,
        )
        yield GaugeMetricFamily(
            "deepseek_requests_running", "Sequences the engine is generating now", s.running
        )
        yield GaugeMetricFamily(
            "deepseek_requests_max_running", "Engine limit on concurrent sequences", s.max_running
        )
        yield GaugeMetricFamily(
            "deepseek_kv_cache_usage_ratio",
            "Fraction of the KV cache budget in use (0..1)",
            s.kv_cache_usage,
        )


class RuntimeMetrics:
    def __init__(self, stats: Callable[[], EngineStats | None]) -> None:
        self.registry = r = CollectorRegistry()
        r.register(_EngineStatsCollector(stats))
        self.batch_size = Histogram(
            "deepseek_batch_size",
            "Sequences in each engine step",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.step_tokens = Counter(
            "deepseek_step_tokens", "Tokens processed by engine steps", ["phase"], registry=r
        )
        self.ttft = Histogram(
            "deepseek_time_to_first_token_seconds",
            "Arrival to first generated token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "deepseek_time_per_output_token_seconds",
            "Mean time per token after the first",
            buckets=_TOKEN_TIME_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "deepseek_e2e_request_latency_seconds",
            "Arrival to last token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "deepseek_prompt_tokens", "Prompt tokens of finished requests", registry=r
        )
        self.generation_tokens = Counter(
            "deepseek_generation_tokens", "Generated tokens of finished requests", registry=r
        )
        self.finished = Counter(
            "deepseek_requests_finished",
            "Finished requests by reason",
            ["finish_reason"],
            registry=r,
        )
        self.content_filtered = Counter(
            "deepseek_content_filter",
            "Completions ended by the output filter",
            ["door"],
            registry=r,
        )
        self.rate_limited = Counter(
            "deepseek_rate_limited",
            "Requests refused by the per-key rate limit",
            ["door"],
            registry=r,
        )
        self.auth_failures = Counter(
            "deepseek_auth_failures",
            "Requests refused by authentication or authorization",
            ["door", "status"],
            registry=r,
        )
        self.http_requests = Counter(
            "deepseek_http_requests",
            "OpenAI-port requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )

    # --- EngineObserver ---
    def on_step(self, batch_size: int, prefill_tokens: int, decode_tokens: int) -> None:
        self.batch_size.observe(batch_size)
        self.step_tokens.labels("prefill").inc(prefill_tokens)
        self.step_tokens.labels("decode").inc(decode_tokens)

    def on_first_token(self, seconds_since_arrival: float) -> None:
        self.ttft.observe(seconds_since_arrival)

    def on_finish(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        seconds_since_arrival: float,
        finish_reason: FinishReason,
    ) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.generation_tokens.inc(completion_tokens)
        self.e2e.observe(seconds_since_arrival)
        self.finished.labels(finish_reason).inc()

    # --- measured by the front doors, which see each delta's arrival ---
    def observe_tpot(self, seconds_after_first: float, tokens_after_first: int) -> None:
        if tokens_after_first > 0:
            self.tpot.observe(seconds_after_first / tokens_after_first)

    def render(self) -> bytes:
        return generate_latest(self.registry)
