"""OpenAI-compatible endpoints: /v1/models, /v1/completions, /v1/chat/completions.

Requests go through the shared `Generator` into the same engine Triton uses. A response does
not start until the engine has accepted the request and produced its first chunk, so queue
(429) and context (400) refusals are real HTTP statuses even for `stream: true`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from deepseek_runtime.doors.generation import (
    Chunk,
    close_quietly,
    encode,
    render_chat,
)
from deepseek_runtime.doors.openai.errors import ApiError, parse_json, read_body
from deepseek_runtime.doors.openai.responses import ChatFormat, CompletionFormat, Format
from deepseek_runtime.doors.openai.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    SamplingRequest,
)
from deepseek_runtime.doors.response_cache import deterministic, replay, request_key
from deepseek_runtime.doors.services import Services
from deepseek_runtime.engine.protocol import Engine, SamplingParams
from deepseek_runtime.guards.audit import AuditRecord
from deepseek_runtime.guards.keys import Permission, Principal

T = TypeVar("T")
Body = TypeVar("Body", bound=SamplingRequest)
AUDIT_KEY = "deepseek.audit"


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def audit_record(request: Request) -> AuditRecord | None:
    return request.scope.get(AUDIT_KEY)


def authorize(request: Request, permission: Permission) -> Principal:
    principal = services(request).authorize(
        request.headers.get("authorization"), permission, "openai"
    )
    if (record := audit_record(request)) is not None:
        record.key, record.role = principal.name, str(principal.role)
    return principal


def check_model(svc: Services, requested: str | None) -> None:
    if requested is not None and requested != svc.model_name:
        raise ApiError(
            404,
            f"model '{requested}' does not exist; this server serves '{svc.model_name}'",
            "model",
            "model_not_found",
        )


def model_card(svc: Services) -> dict[str, Any]:
    max_len = svc.engine.max_model_len if svc.engine else None
    return {
        "id": svc.model_name,
        "object": "model",
        "created": svc.created,
        "owned_by": "deepseek-runtime",
        "max_model_len": max_len,
    }


async def list_models(request: Request) -> Response:
    authorize(request, Permission.MODELS)
    svc = services(request)
    svc.require_engine()
    return JSONResponse({"object": "list", "data": [model_card(svc)]})


async def get_model(request: Request) -> Response:
    authorize(request, Permission.MODELS)
    svc = services(request)
    svc.require_engine()
    check_model(svc, request.path_params["model"])
    return JSONResponse(model_card(svc))


async def _tokenize(tokenizer: Any, text: str, chat: bool) -> tuple[int, ...]:
    if len(text) < 4096:  # short prompts: a thread hop costs more than the encoding
        return encode(tokenizer, text, chat)
    return await anyio.to_thread.run_sync(encode, tokenizer, text, chat)


def _vocabulary_size(tokenizer: Any) -> int | None:
    """Ids the tokenizer knows, added tokens included (len() counts them, vocab_size not)."""
    try:
        return max(len(tokenizer), int(getattr(tokenizer, "vocab_size", 0) or 0)) or None
    except TypeError:  # a tokenizer without __len__
        return int(getattr(tokenizer, "vocab_size", 0) or 0) or None


def _params(body: SamplingRequest, max_tokens: int | None) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        seed=body.seed,
        stop=body.stop_strings(),
        ignore_eos=body.ignore_eos,
    )


async def _accept(request: Request, model: type[Body]) -> tuple[Services, Engine, Body]:
    """An inference request's common checks: key and role, body, loaded engine, model name."""
    request.state.principal = authorize(request, Permission.INFERENCE)
    svc = services(request)
    body = parse_json(await read_body(request, svc.settings.max_body_bytes), model)
    engine, _ = svc.require_engine()
    check_model(svc, body.model)
    return svc, engine, body


async def completions(request: Request) -> Response:
    svc, engine, body = await _accept(request, CompletionRequest)
    prompt = body.prompt_text_or_ids()
    text: str | None = None
    if isinstance(prompt, str):
        text = prompt
        ids = await _tokenize(engine.tokenizer, prompt, chat=False)
    else:
        vocab = _vocabulary_size(engine.tokenizer)
        if vocab is not None and max(prompt) >= vocab:
            raise ApiError(
                400,
                f"prompt token id {max(prompt)} is outside the vocabulary (size {vocab})",
                "prompt",
                "invalid_value",
            )
        ids = tuple(prompt)
    fmt = CompletionFormat(svc, body)
    return await _generate(request, svc, body, ids, body.max_tokens, text, fmt)


async def chat_completions(request: Request) -> Response:
    svc, engine, body = await _accept(request, ChatCompletionRequest)
    messages = [m.as_template_input() for m in body.messages]
    try:
        text = render_chat(engine.tokenizer, messages)
    except Exception as exc:  # templates raise on what they cannot render (role order, ...)
        raise ApiError(
            400, f"the chat template rejected the messages: {exc}", "messages", "invalid_messages"
        ) from exc
    ids = await _tokenize(engine.tokenizer, text, chat=True)
    fmt = ChatFormat(svc, body, text)
    return await _generate(request, svc, body, ids, body.output_limit(), text, fmt)


async def _generate(
    request: Request,
    svc: Services,
    body: SamplingRequest,
    ids: tuple[int, ...],
    max_tokens: int | None,
    prompt_text: str | None,
    fmt: Format,
) -> Response:
    _, generator = svc.require_engine()
    if not ids:
        raise ApiError(400, "the prompt is empty", "prompt", "invalid_value")
    params = _params(body, max_tokens)
    record = audit_record(request)
    if record is not None:
        record.model, record.prompt_tokens, record.prompt = svc.model_name, len(ids), prompt_text
    tenant: str = request.state.principal.name
    cache, key = svc.response_cache, None
    if cache.enabled and deterministic(params):
        key = request_key(tenant, svc.model_name, request.url.path, body.model_dump(mode="json"))
        hit = cache.get(key)
        svc.metrics.response_cache.labels("miss" if hit is None else "hit").inc()
        if hit is not None:
            return _replay(svc, body, fmt, hit, record)
    chunks = generator.stream(generator.request(fmt.id_prefix, ids, params, tenant), "openai")
    if key is not None:
        chunks = cache.recording(key, chunks)
    try:
        first = await _unless_disconnected(request, anext(chunks, None))
        if body.stream:
            events = fmt.events(_prepend(first, chunks), record)
            return EventStream(
                events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
        done = await _unless_disconnected(request, _collect(first, chunks))
    except BaseException:
        await close_quietly(chunks)
        raise
    return JSONResponse(fmt.whole(done, record))


def _replay(
    svc: Services,
    body: SamplingRequest,
    fmt: Format,
    hit: tuple[Chunk, ...],
    record: AuditRecord | None,
) -> Response:
    """A response-cache hit, delivered as the client asked (a stream replays as a stream)."""
    if record is not None:
        record.cached = "response"
    svc.metrics.finished.labels(hit[-1].finish_reason or "stop").inc()
    if body.stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return EventStream(fmt.events(replay(hit), record), headers=headers)
    return JSONResponse(fmt.whole(list(hit), record))


async def _prepend(first: Chunk | None, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    try:
        if first is not None:
            yield first
            async for chunk in rest:
                yield chunk
    finally:
        await close_quietly(rest)  # closing this generator must close the engine's too


async def _collect(first: Chunk | None, rest: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in _prepend(first, rest)]


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Awaits work, cancelling it (and so aborting the sequence) if the client goes away."""
    outcome: list[tuple[bool, Any]] = []

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:  # caught here: an error leaving a task group would arrive as an ExceptionGroup
            outcome.append((True, await work))
        except Exception as exc:
            outcome.append((False, exc))
        tg.cancel_scope.cancel()
    if not outcome:  # 499 (nginx's "client closed request"): only the audit log sees it
        raise ApiError(499, "the client disconnected", None, "client_disconnected")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class EventStream(StreamingResponse):
    """SSE whose body iterator is always closed, whichever way the response ends."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await close_quietly(self.body_iterator)  # type: ignore[arg-type]


def routes() -> list[Route]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
