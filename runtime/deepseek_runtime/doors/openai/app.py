"""The Starlette application on the OpenAI port: API routes, probes, metrics, audit, OpenAPI;
and the one on the metrics port, /metrics alone (so a NetworkPolicy can let Prometheus scrape
without opening the API to it).

Probes are open (kubelet sends no credentials): /health answers while the process lives,
/ready only once the engine is loaded and warmed, Triton is bound, and no drain has begun.
/metrics is open by default so Prometheus can scrape; `--metrics-auth` asks for a key whose
role carries `metrics` (auditor, admin).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepseek_runtime.doors.openai import routes
from deepseek_runtime.doors.openai.errors import ApiError, error_response, handle_exception
from deepseek_runtime.doors.openai.openapi import openapi_document
from deepseek_runtime.doors.services import Services
from deepseek_runtime.engine.protocol import EngineError
from deepseek_runtime.guards.audit import AuditRecord, CursorExpiredError
from deepseek_runtime.guards.keys import AuthError, Permission
from deepseek_runtime.metrics import CONTENT_TYPE

AUDITED_PREFIX = "/v1/"
MAX_AUDIT_LIMIT = 1000  # records per page; follow next_cursor for more


async def health(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def ready(request: Request) -> Response:
    svc = routes.services(request)
    engine_ok = svc.engine is not None and svc.engine.is_ready()
    triton_ok = svc.triton_alive is None or svc.triton_alive()
    if svc.ready and engine_ok and triton_ok and not svc.draining:
        return PlainTextResponse("ready\n")
    why = "draining" if svc.draining else "loading" if not svc.ready else "unhealthy"
    return error_response(ApiError(503, f"not ready: {why}", None, why))


async def metrics(request: Request) -> Response:
    svc = routes.services(request)
    if svc.settings.metrics_auth:
        routes.authorize(request, Permission.METRICS)
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE)


async def audit_log(request: Request) -> Response:
    routes.authorize(request, Permission.AUDIT)
    svc = routes.services(request)
    if svc.audit is None:
        raise ApiError(
            404,
            "the audit log is off; start the server with --audit-log FILE",
            None,
            "audit_disabled",
        )
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT_LIMIT:
        raise ApiError(
            400, f"limit must be an integer from 1 to {MAX_AUDIT_LIMIT}", "limit", "invalid_value"
        )
    cursor = request.query_params.get("cursor")
    try:  # file I/O (up to audit.PAGE_BYTES) off the event loop: streams keep flowing
        page = await anyio.to_thread.run_sync(svc.audit.read_page, int(raw), cursor)
    except CursorExpiredError as exc:
        raise ApiError(
            400, f"{exc}; start again without a cursor", "cursor", "invalid_cursor"
        ) from exc
    return JSONResponse({"object": "list", "data": page.records, "next_cursor": page.next_cursor})


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def _route_label(path: str) -> str:
    """A bounded label set for metrics: fuzzed paths must not mint new time series."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    known = {
        "/v1/models",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/audit",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
    }
    return path if path in known else "other"


class AuditAndCount:
    """Writes one audit line per /v1 request when its response has finished (streams too)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.svc = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        label = _route_label(scope["path"])
        record = None
        if self.svc.audit is not None and scope["path"].startswith(AUDITED_PREFIX):
            client = scope.get("client")
            record = AuditRecord(endpoint=label, client=client[0] if client else None)
            scope[routes.AUDIT_KEY] = record
        status = 500  # what the outer error middleware answers if the app raises
        started = time.monotonic()

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            self.svc.metrics.http_requests.labels(label, str(status)).inc()
            if record is not None and self.svc.audit is not None:
                record.status, record.latency_s = status, round(time.monotonic() - started, 4)
                self.svc.audit.write(record)


def _starlette(services: Services, endpoints: Sequence[BaseRoute]) -> Starlette:
    handlers: dict[Any, Any] = {
        cls: handle_exception for cls in (HTTPException, ApiError, AuthError, EngineError)
    }
    handlers[Exception] = handle_exception  # a bug: still JSON, still serving
    app = Starlette(
        routes=endpoints,
        middleware=[Middleware(AuditAndCount, services=services)],
        exception_handlers=handlers,
    )
    app.state.services = services
    return app


def build_app(services: Services) -> Starlette:
    # /metrics stays here as well as on the metrics port: the Gateway API Inference Extension's
    # endpoint picker scrapes the model server's own port (it reaches the API anyway).
    endpoints = [
        *routes.routes(),
        Route("/v1/audit", audit_log, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = _starlette(services, endpoints)
    app.state.openapi = openapi_document(services.guard.enabled, services.settings.metrics_auth)
    return app


def build_metrics_app(services: Services) -> Starlette:
    """The metrics port's application: the same /metrics (same registry, same --metrics-auth),
    and nothing else: every other path is a 404."""
    return _starlette(services, [Route("/metrics", metrics, methods=["GET"])])
