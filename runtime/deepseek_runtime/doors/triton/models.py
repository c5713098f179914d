"""The callables PyTriton binds: Triton requests -> the shared engine -> KServe v2 outputs
(tensors.py lists them). Errors are raised as "<status> <code>: message"."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from deepseek_runtime.doors.generation import Chunk, close_quietly, encode
from deepseek_runtime.doors.services import Services
from deepseek_runtime.doors.triton.tensors import (
    RequestRefused,
    error_output,
    output,
    parse_request,
)
from deepseek_runtime.engine.protocol import EngineError, SamplingParams
from deepseek_runtime.guards.audit import AuditRecord
from deepseek_runtime.guards.keys import AuthError, Permission, Principal

log = logging.getLogger(__name__)

_CODES = {400: "invalid_value", 429: "queue_full", 503: "unavailable"}


class TritonModels:
    """The callables PyTriton binds; they run on PyTriton's own event-loop thread."""

    def __init__(self, services: Services, chunk_s: float) -> None:
        self.svc = services
        self.chunk_s = chunk_s
        self._lock = threading.Lock()
        self.in_flight = 0

    def _authorize(self, req: Any, record: AuditRecord) -> Principal:
        params = req.parameters or {}
        token = params.get("authorization") or params.get("Authorization")
        try:
            principal = self.svc.authorize(
                str(token) if token else None, Permission.INFERENCE, "triton"
            )
        except AuthError as exc:
            record.status = exc.status
            raise RequestRefused(f"{exc.status} {exc.code}: {exc.message}") from None
        record.key, record.role = principal.name, str(principal.role)
        return principal

    async def _chunks(
        self, prompt: str, opt: dict[str, Any], record: AuditRecord, tenant: str
    ) -> AsyncIterator[tuple[str, Chunk]]:
        """Coalesced (text, last chunk) pairs: the first at once, then at most every chunk_s."""
        try:
            engine, generator = self.svc.require_engine()
            ids = await asyncio.to_thread(encode, engine.tokenizer, prompt, False)
            params = SamplingParams(
                max_tokens=opt["max_tokens"],
                temperature=opt["temperature"],
                top_p=opt["top_p"],
                top_k=opt["top_k"],
                seed=opt["seed"],
                stop=opt["stop"],
                ignore_eos=opt["ignore_eos"],
            )
            record.model, record.prompt_tokens = self.svc.model_name, len(ids)
            request = generator.request("triton", ids, params, tenant)
            stream = generator.stream(request, "triton")
            buffered, last_sent, first = "", 0.0, True
            try:
                async for chunk in stream:
                    buffered += chunk.text
                    record.completion_tokens = chunk.completion_tokens
                    record.finish_reason = chunk.finish_reason
                    now = time.monotonic()
                    if first or chunk.finish_reason or now - last_sent >= self.chunk_s:
                        yield buffered, chunk
                        buffered, last_sent, first = "", now, False
            finally:
                await close_quietly(stream)
        except EngineError as exc:
            record.status = exc.status_code
            raise RequestRefused(
                f"{exc.status_code} {_CODES.get(exc.status_code)}: {exc}"
            ) from None

    async def _run(self, req: Any, whole: bool) -> AsyncIterator[dict[str, np.ndarray]]:
        record = AuditRecord(endpoint=f"triton/{self.svc.model_name}", door="triton", status=200)
        started, text = time.monotonic(), ""
        with self._lock:
            self.in_flight += 1
        try:
            if self.svc.draining:
                record.status = 503
                raise RequestRefused("503 unavailable: the server is shutting down")
            principal = self._authorize(req, record)
            prompt, opt = parse_request(req)
            record.prompt = prompt
            pieces = self._chunks(prompt, opt, record, principal.name)
            try:
                if whole or not opt["stream"]:
                    last = None
                    async for piece, chunk in pieces:
                        text, last = text + piece, chunk
                    yield output(text, last, batched=whole)
                    return
                async for piece, chunk in pieces:
                    text += piece
                    yield output(piece, chunk)
            finally:
                await close_quietly(pieces)
        except RequestRefused as exc:
            record.status = record.status if record.status != 200 else 400
            log.info("triton request refused: %s", exc)
            raise
        finally:
            with self._lock:
                self.in_flight -= 1
            if self.svc.audit is not None:
                record.completion = text
                record.latency_s = round(time.monotonic() - started, 4)
                self.svc.audit.write(record)

    async def stream_fn(self, requests: list[Any]) -> AsyncIterator[list[dict[str, Any]]]:
        for req in requests:  # batching is off for the decoupled model: one request per call
            async for out in self._run(req, whole=False):
                yield [out]

    async def whole_fn(self, requests: list[Any]) -> list[dict[str, Any]]:
        async def one(req: Any) -> dict[str, Any]:
            return [out async for out in self._run(req, whole=True)][-1]

        # The dynamic batcher hands over several requests: run them concurrently. PyTriton
        # can only fail a whole batch, so a lone bad request raises, and a bad one among good
        # ones answers with an empty text and `finish_reason: "error: ..."`.
        results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        if len(results) == 1 and isinstance(results[0], BaseException):
            raise results[0]
        return [error_output(r) if isinstance(r, BaseException) else r for r in results]

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.in_flight == 0
