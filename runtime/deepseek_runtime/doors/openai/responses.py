"""OpenAI wire formats: whole responses and SSE chunks for completions and chat.

Chat responses of reasoning models carry `reasoning_content` beside `content`, split out of
`<think>...</think>` (streamed as its own deltas). Usage rides on the last event when the
client asks for `stream_options.include_usage`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from deepseek_runtime.doors.generation import Chunk, new_request_id
from deepseek_runtime.doors.openai.errors import to_api_error
from deepseek_runtime.doors.openai.schema import SamplingRequest
from deepseek_runtime.doors.reasoning import (
    ReasoningSplitter,
    prompt_opens_reasoning,
    split_reasoning,
)
from deepseek_runtime.doors.services import Services
from deepseek_runtime.engine.protocol import EngineError
from deepseek_runtime.guards.audit import AuditRecord

DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def usage(chunk: Chunk | None) -> dict[str, int]:
    p, c = (chunk.prompt_tokens, chunk.completion_tokens) if chunk else (0, 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class Format:
    id_prefix = "cmpl"
    object_name = "text_completion"
    chunk_object = "text_completion"

    def __init__(self, svc: Services, body: SamplingRequest) -> None:
        self.model = svc.model_name
        self.id = new_request_id(self.id_prefix)
        self.created = int(time.time())
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def envelope(self, obj: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            **fields,
        }

    # --- per-format parts ---
    def choice(self, text: str, finish: str | None) -> dict[str, Any]:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

    def deltas(self, chunk: Chunk) -> list[dict[str, Any]]:
        final = chunk.finish_reason
        return [self.choice(chunk.text, final)] if chunk.text or final else []

    def opening(self) -> list[dict[str, Any]]:
        return []

    def whole_choice(self, text: str, finish: str | None) -> dict[str, Any]:
        return self.choice(text, finish)

    # --- shared ---
    def whole(self, chunks: list[Chunk], record: AuditRecord | None) -> dict[str, Any]:
        text = "".join(c.text for c in chunks)
        last = chunks[-1] if chunks else None
        finish = last.finish_reason if last else "abort"
        _audit(record, last, text)
        return self.envelope(
            self.object_name, choices=[self.whole_choice(text, finish)], usage=usage(last)
        )

    async def events(
        self, chunks: AsyncIterator[Chunk], record: AuditRecord | None
    ) -> AsyncIterator[bytes]:
        extra = {"usage": None} if self.include_usage else {}
        last: Chunk | None = None
        text = ""
        try:
            for choice in self.opening():
                yield sse(self.envelope(self.chunk_object, choices=[choice], **extra))
            try:
                async for chunk in chunks:
                    last, text = chunk, text + chunk.text
                    for choice in self.deltas(chunk):
                        yield sse(self.envelope(self.chunk_object, choices=[choice], **extra))
            except EngineError as exc:
                # Headers are gone already: say so in-band, as OpenAI does (its client raises
                # APIError on an "error" event), instead of cutting the connection.
                err = to_api_error(exc)
                yield sse({"error": {"message": err.message, "type": "server_error",
                                     "param": None, "code": err.code}})  # fmt: skip
                return
            if self.include_usage:
                yield sse(self.envelope(self.chunk_object, choices=[], usage=usage(last)))
            yield DONE
        finally:
            _audit(record, last, text)


class CompletionFormat(Format):
    pass


class ChatFormat(Format):
    id_prefix = "chatcmpl"
    object_name = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def __init__(self, svc: Services, body: SamplingRequest, prompt_text: str) -> None:
        super().__init__(svc, body)
        self.reasoning = svc.reasoning
        self.in_reasoning = svc.reasoning and prompt_opens_reasoning(prompt_text)
        self.splitter = ReasoningSplitter(self.in_reasoning)

    def delta_choice(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def opening(self) -> list[dict[str, Any]]:
        return [self.delta_choice({"role": "assistant", "content": ""}, None)]

    def deltas(self, chunk: Chunk) -> list[dict[str, Any]]:
        final = chunk.finish_reason is not None
        if self.reasoning:
            reasoning, content = self.splitter.feed(chunk.text, final=final)
        else:
            reasoning, content = "", chunk.text
        out = []
        if reasoning:
            out.append(self.delta_choice({"reasoning_content": reasoning}, None))
        if content:
            out.append(self.delta_choice({"content": content}, None))
        if final:
            out.append(self.delta_choice({}, chunk.finish_reason))
        return out

    def whole_choice(self, text: str, finish: str | None) -> dict[str, Any]:
        reasoning, content = (
            split_reasoning(text, self.in_reasoning) if self.reasoning else (None, text)
        )
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}


def _audit(record: AuditRecord | None, last: Chunk | None, text: str) -> None:
    if record is None:
        return
    if last is not None:
        record.prompt_tokens, record.completion_tokens = last.prompt_tokens, last.completion_tokens
        record.finish_reason = last.finish_reason
    record.completion = text
