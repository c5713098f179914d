"""The callables PyTriton binds: Triton requests -> the shared engine -> KServe v2 outputs.

Inputs: text_input (BYTES, required), max_tokens (INT32), temperature and top_p (FP32),
top_k (INT32), seed (INT64), ignore_eos and stream (BOOL), stop (BYTES, any count).
Outputs: text_output (BYTES), finish_reason (BYTES, empty until the last response),
prompt_tokens and completion_tokens (INT32). Errors are raised as "<status> <code>: message".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from deepseek_runtime.audit import AuditRecord
from deepseek_runtime.engine.protocol import EngineError
from deepseek_runtime.security import AuthError, Permission, Principal
from deepseek_runtime.serving import (
    Chunk,
    Services,
    check_length,
    close_quietly,
    encode,
    sampling_params,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256
_CODES = {400: "invalid_value", 429: "queue_full", 503: "unavailable"}


class RequestRefused(Exception):
    """Reported to the Triton client as the request's error message, "<status> <code>: why".

    PyTriton formats errors with `traceback.format_exception`; hiding the traceback from
    Python-level readers keeps our file paths and frames out of what clients see (the
    interpreter itself still records it internally).
    """

    __module__ = "deepseek_runtime"

    @property
    def __traceback__(self) -> None:
        return None

    @__traceback__.setter
    def __traceback__(self, value: object) -> None:
        pass


def _first(req: Any, name: str) -> Any | None:
    if name not in req.data:
        return None
    value = np.asarray(req.data[name]).reshape(-1)
    return value[0] if value.size else None


def _text(value: Any) -> str:
    raw = value if isinstance(value, bytes) else str(value).encode()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRefused("400 invalid_value: text inputs must be UTF-8") from None


def parse_request(req: Any) -> tuple[str, dict[str, Any]]:
    """(prompt, options) from a PyTriton request; shapes [1] and [batch, 1] both work."""
    prompt = _text(_first(req, "text_input") or b"")
    if not prompt:
        raise RequestRefused("400 invalid_value: text_input must be a non-empty string")
    stops: Any = np.asarray(req.data["stop"]).reshape(-1) if "stop" in req.data else []

    def get(name: str, cast: Any, default: Any) -> Any:
        value = _first(req, name)
        return default if value is None else cast(value)

    return prompt, {
        "max_tokens": get("max_tokens", int, None),
        "temperature": get("temperature", float, 1.0),
        "top_p": get("top_p", float, 1.0),
        "top_k": get("top_k", int, 0),
        "seed": get("seed", int, None),
        "ignore_eos": get("ignore_eos", bool, False),
        "stream": get("stream", bool, True),
        "stop": tuple(t for t in (_text(s) for s in stops) if t),
    }


def _output(text: str, chunk: Chunk | None, batched: bool = False) -> dict[str, np.ndarray]:
    """One response; `batched` adds the leading batch dimension the _sync model expects."""
    out = {
        "text_output": np.array([text.encode("utf-8")], dtype=object),
        "finish_reason": np.array([((chunk and chunk.finish_reason) or "").encode()], dtype=object),
        "prompt_tokens": np.array([chunk.prompt_tokens if chunk else 0], dtype=np.int32),
        "completion_tokens": np.array([chunk.completion_tokens if chunk else 0], dtype=np.int32),
    }
    return {k: v[np.newaxis] for k, v in out.items()} if batched else out


def _error_output(exc: BaseException) -> dict[str, np.ndarray]:
    out = _output("", None, batched=True)
    out["finish_reason"] = np.array([[f"error: {exc}".encode()]], dtype=object)
    return out


class TritonDoor:
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
            principal = self.svc.guard.check(str(token) if token else None, Permission.INFERENCE)
        except AuthError as exc:
            if exc.status == 429:
                self.svc.metrics.rate_limited.labels("triton").inc()
            else:
                self.svc.metrics.auth_failures.labels("triton", str(exc.status)).inc()
            record.status = exc.status
            raise RequestRefused(f"{exc.status} {exc.code}: {exc.message}") from None
        record.key, record.role = principal.name, str(principal.role)
        return principal

    async def _chunks(
        self, prompt: str, opt: dict[str, Any], record: AuditRecord
    ) -> AsyncIterator[tuple[str, Chunk]]:
        """Coalesced (text, last chunk) pairs: the first at once, then at most every chunk_s."""
        try:
            engine, generator = self.svc.require_engine()
            ids = await asyncio.to_thread(encode, engine.tokenizer, prompt, False)
            room = engine.max_model_len - len(ids)
            wanted = opt["max_tokens"]
            max_tokens = check_length(
                engine,
                len(ids),
                max(1, min(DEFAULT_MAX_TOKENS, room)) if wanted is None else wanted,
            )
            params = sampling_params(
                max_tokens,
                opt["temperature"],
                opt["top_p"],
                opt["top_k"],
                opt["seed"],
                opt["stop"],
                opt["ignore_eos"],
            )
            record.model, record.prompt_tokens = self.svc.model_name, len(ids)
            stream = generator.stream(generator.request("triton", ids, params), "triton")
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
            self._authorize(req, record)
            prompt, opt = parse_request(req)
            record.prompt = prompt
            pieces = self._chunks(prompt, opt, record)
            try:
                if whole or not opt["stream"]:
                    last = None
                    async for piece, chunk in pieces:
                        text, last = text + piece, chunk
                    yield _output(text, last, batched=whole)
                    return
                async for piece, chunk in pieces:
                    text += piece
                    yield _output(piece, chunk)
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
        return [_error_output(r) if isinstance(r, BaseException) else r for r in results]

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.in_flight == 0
