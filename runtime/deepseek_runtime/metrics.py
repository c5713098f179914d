"""Prometheus metrics for the runtime, served on /metrics of the metrics port (the OpenAI port too).

`deepseek_requests_waiting` is the HPA's queue metric. It is read from `engine.stats()` at
scrape time, not pushed: Triton's own pending count is blind for decoupled models, and a
pushed gauge could go stale between steps. The class also implements the engine's
`EngineObserver`; the engine calls those hooks from its own thread (prometheus-client is
thread-safe).

The same snapshot is also exported under vLLM's names (`vllm:num_requests_waiting`, ...), the
names the Gateway API Inference Extension's endpoint picker reads by default from pods labelled
`inference.networking.k8s.io/engine-type: vllm` (the operator puts that label on runtime pods):
an InferencePool routes to our pods with no per-engine configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from deepseek_runtime.engine.protocol import EngineStats, FinishedRequest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
_TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_IDLE = EngineStats(waiting=0, running=0, max_running=0, kv_cache_usage=0.0)

_GAUGES = (  # name, help, EngineStats field
    ("deepseek_requests_waiting",
     "Requests admitted by the engine but not yet scheduled (the autoscaling queue)", "waiting"),
    ("deepseek_requests_running", "Sequences the engine is generating now", "running"),
    ("deepseek_requests_max_running", "Engine limit on concurrent sequences", "max_running"),
    ("deepseek_kv_cache_usage_ratio",
     "Fraction of the KV cache's blocks referenced by running sequences (0..1)",
     "kv_cache_usage"),
    ("deepseek_kv_cache_blocks_used", "KV cache blocks referenced by running sequences",
     "kv_blocks_used"),
    ("deepseek_kv_cache_blocks_cached",
     "KV cache blocks no sequence references, kept for prefix reuse (evicted when needed)",
     "kv_blocks_cached"),
    ("deepseek_kv_cache_blocks_total", "KV cache blocks in the budget", "kv_blocks_total"),
)  # fmt: skip
_COUNTERS = (  # name (without _total), help, EngineStats field
    ("deepseek_prefix_cache_queries", "Prompt tokens looked up in the prefix cache",
     "prefix_query_tokens"),
    ("deepseek_prefix_cache_hits",
     "Prompt tokens found in the prefix cache (their KV reused, not computed)",
     "prefix_hit_tokens"),
)  # fmt: skip

# The inference extension's model-server protocol, by vLLM's names. KV usage appears under both
# its current (`kv_cache_usage_perc`) and its older (`gpu_cache_usage_perc`) name: pickers of
# either generation read it. vLLM's "perc" gauges are fractions 0..1, like ours.
_VLLM_GAUGES = (
    ("vllm:num_requests_waiting", "Requests waiting to be processed", "waiting"),
    ("vllm:num_requests_running", "Requests being generated", "running"),
    ("vllm:kv_cache_usage_perc", "KV-cache usage, 1 means 100 percent", "kv_cache_usage"),
    ("vllm:gpu_cache_usage_perc", "KV-cache usage, 1 means 100 percent", "kv_cache_usage"),
)


class _EngineStatsCollector(Collector):
    """One consistent `stats()` snapshot per scrape for all engine gauges (zeros until the
    engine has loaded)."""

    def __init__(self) -> None:
        self.stats: Callable[[], EngineStats] | None = None
        self.model_name = ""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.stats() if self.stats is not None else _IDLE
        for name, text, attribute in _GAUGES:
            yield GaugeMetricFamily(name, text, value=getattr(s, attribute))
        for name, text, attribute in _VLLM_GAUGES:
            family = GaugeMetricFamily(name, text, labels=["model_name"])
            family.add_metric([self.model_name], getattr(s, attribute))
            yield family
        for name, text, attribute in _COUNTERS:  # the engine's own running totals
            yield CounterMetricFamily(name, text, value=getattr(s, attribute))


class RuntimeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._engine = _EngineStatsCollector()
        self.registry.register(self._engine)
        self.batch_size = self._histogram(
            "deepseek_batch_size", "Sequences in each engine step", _BATCH_BUCKETS
        )
        self.step_tokens = self._counter(
            "deepseek_step_tokens", "Tokens processed by engine steps", "phase"
        )
        self.ttft = self._histogram(
            "deepseek_time_to_first_token_seconds",
            "Arrival to first generated token",
            _LATENCY_BUCKETS,
        )
        self.tpot = self._histogram(
            "deepseek_time_per_output_token_seconds",
            "Mean time per token after the first",
            _TOKEN_TIME_BUCKETS,
        )
        self.e2e = self._histogram(
            "deepseek_e2e_request_latency_seconds", "Arrival to last token", _LATENCY_BUCKETS
        )
        self.prompt_tokens = self._counter(
            "deepseek_prompt_tokens", "Prompt tokens of finished requests"
        )
        self.generation_tokens = self._counter(
            "deepseek_generation_tokens", "Generated tokens of finished requests"
        )
        self.finished = self._counter(
            "deepseek_requests_finished",
            "Finished requests by the finish_reason their client got",
            "finish_reason",
        )
        self.content_filtered = self._counter(
            "deepseek_content_filter", "Completions ended by the output filter", "door"
        )
        self.rate_limited = self._counter(
            "deepseek_rate_limited", "Requests refused by the per-key rate limit", "door"
        )
        self.auth_failures = self._counter(
            "deepseek_auth_failures",
            "Requests refused by authentication or authorization",
            "door",
            "status",
        )
        self.response_cache = self._counter(
            "deepseek_response_cache",
            "Deterministic requests looked up in the response cache, by result (hit, miss)",
            "result",
        )
        self.http_requests = self._counter(
            "deepseek_http_requests",
            "OpenAI-port requests by endpoint and status",
            "endpoint",
            "status",
        )

    def _counter(self, name: str, text: str, *labels: str) -> Counter:
        return Counter(name, text, labels, registry=self.registry)

    def _histogram(self, name: str, text: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(name, text, buckets=buckets, registry=self.registry)

    def read_stats_from(self, stats: Callable[[], EngineStats], model_name: str = "") -> None:
        """The engine's gauges, once it has loaded (scrapes before then read zeros); the vLLM-named
        ones carry the served model's name, as vLLM's do."""
        self._engine.stats = stats
        self._engine.model_name = model_name

    # --- EngineObserver ---
    def on_step(self, batch_size: int, prefill_tokens: int, decode_tokens: int) -> None:
        self.batch_size.observe(batch_size)
        self.step_tokens.labels("prefill").inc(prefill_tokens)
        self.step_tokens.labels("decode").inc(decode_tokens)

    def on_first_token(self, seconds_since_arrival: float) -> None:
        self.ttft.observe(seconds_since_arrival)

    def on_finish(self, finished: FinishedRequest) -> None:
        self.prompt_tokens.inc(finished.prompt_tokens)
        self.generation_tokens.inc(finished.completion_tokens)
        self.e2e.observe(finished.seconds_since_arrival)
        # deepseek_requests_finished_total is counted by the doors (doors/generation.py): the
        # engine does not know when the output filter ended a request.

    # --- measured by the front doors, which see each delta's arrival ---
    def observe_tpot(self, seconds_after_first: float, tokens_after_first: int) -> None:
        if tokens_after_first > 0:
            self.tpot.observe(seconds_after_first / tokens_after_first)

    def render(self) -> bytes:
        return generate_latest(self.registry)
