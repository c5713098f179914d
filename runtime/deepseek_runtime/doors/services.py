"""Everything the front doors share: settings, guards, metrics, and the engine once loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deepseek_runtime.doors.generation import Generator
from deepseek_runtime.doors.reasoning import tokenizer_has_think_tags
from deepseek_runtime.doors.response_cache import ResponseCache
from deepseek_runtime.engine.protocol import Engine, EngineError, EngineShuttingDownError
from deepseek_runtime.guards.audit import AuditLog
from deepseek_runtime.guards.keys import AuthError, Guard, Permission, Principal
from deepseek_runtime.guards.output_filter import OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.settings import ServerSettings


class NotReadyError(EngineError):
    """The model is still loading: answer 503 (readiness probes keep traffic away anyway)."""

    status_code = 503


@dataclass
class Services:
    """Everything the front doors share; the engine arrives once it has loaded."""

    settings: ServerSettings
    guard: Guard
    metrics: RuntimeMetrics
    output_filter: OutputFilter
    audit: AuditLog | None = None
    response_cache: ResponseCache = field(default_factory=lambda: ResponseCache(0, 1.0))
    engine: Engine | None = None
    generator: Generator | None = None
    model_name: str = ""
    reasoning: bool = False
    ready: bool = False  # engine loaded and warmed, Triton (if on) bound
    draining: bool = False
    triton_alive: Callable[[], bool] | None = None  # set once Triton is up
    created: int = field(default_factory=lambda: int(time.time()))

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        self.model_name = self.settings.served_model_name or engine.model_name
        self.metrics.read_stats_from(engine.stats, self.model_name)
        self.generator = Generator(engine, self.output_filter, self.metrics)
        mode = self.settings.reasoning
        self.reasoning = mode == "on" or (
            mode == "auto" and tokenizer_has_think_tags(engine.tokenizer)
        )

    def require_engine(self) -> tuple[Engine, Generator]:
        if self.draining:
            raise EngineShuttingDownError("the server is shutting down; retry on another replica")
        if self.engine is None or self.generator is None:
            raise NotReadyError("the model is still loading; retry shortly")
        return self.engine, self.generator

    def authorize(self, authorization: str | None, permission: Permission, door: str) -> Principal:
        """The guard's verdict for one request (AuthError: 401, 403 or 429), counted per door."""
        try:
            return self.guard.check(authorization, permission)
        except AuthError as exc:
            if exc.status == 429:
                self.metrics.rate_limited.labels(door).inc()
            else:
                self.metrics.auth_failures.labels(door, str(exc.status)).inc()
            raise
