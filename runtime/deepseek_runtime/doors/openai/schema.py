"""Pydantic models of the OpenAI request bodies the runtime accepts.

The models are the single source of truth for validation AND for /openapi.json, so what the
schema promises and what the server rejects cannot drift apart (schemathesis checks both).
Features the engine does not implement are accepted only at their neutral value and rejected
with a 400 that names them, rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

MAX_STOP = 16  # the engine's own bound (SamplingParams)


def _utf8(value: str) -> str:
    # JSON allows lone surrogates ("\ud800"); tokenizers do not. Refuse them here, as a 400.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


Text = Annotated[str, AfterValidator(_utf8)]
NonEmptyText = Annotated[str, Field(min_length=1), AfterValidator(_utf8)]
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]


def _false(value: bool) -> bool:
    if value:
        raise ValueError("only false is supported")
    return value


# Not Literal[...]: pydantic matches literals by equality, so 1.0 would pass for 1 and 0 for
# False, while the published schema says integer and boolean.
FalseOnly = Annotated[bool, AfterValidator(_false), WithJsonSchema({"const": False})]


def _one(name: str) -> Any:
    return Field(None, ge=1, le=1, description=f"Only {name}=1 is supported")


def _zero(name: str) -> Any:
    return Field(0.0, ge=0.0, le=0.0, description=f"{name} is not supported: omit it or send 0")


class _Body(BaseModel):
    # Unknown fields are ignored, as OpenAI-compatible servers do: SDKs and frameworks send
    # optional extras (`user`, `metadata`, ...) that change nothing here.
    # Strict: "1" is not a number and 1 is not true; the schema says what the server takes.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)


class StreamOptions(_Body):
    include_usage: bool = False


class SamplingRequest(_Body):
    """What completions and chat requests share: sampling, limits, streaming, the model."""

    model: Text | None = Field(None, description="Served model name; defaults to it")
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="New tokens at most; must fit beside the prompt (else 400). Unset: the "
        "rest of the context, at most the server's --default-max-tokens",
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, le=2**31 - 1, description="0 disables (extension)")
    n: int | None = _one("n")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: NonEmptyText | Annotated[list[NonEmptyText], Field(max_length=MAX_STOP)] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    ignore_eos: bool = Field(False, description="Extension: generate past end-of-text")
    presence_penalty: float = _zero("presence_penalty")
    frequency_penalty: float = _zero("frequency_penalty")
    logit_bias: Annotated[dict[str, float], Field(max_length=0)] | None = Field(
        None, description="logit_bias is not supported"
    )
    user: Text | None = None

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


Prompt = (
    Text
    | Annotated[list[TokenId], Field(min_length=1)]
    | Annotated[list[Text], Field(min_length=1, max_length=1)]
    | Annotated[
        list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1, max_length=1)
    ]
)


class CompletionRequest(SamplingRequest):
    prompt: Prompt = Field(description="One prompt: text or token ids (batches of one)")
    echo: FalseOnly = Field(False, description="echo is not supported")
    logprobs: int | None = Field(None, ge=0, le=0, description="logprobs are not supported")
    best_of: int | None = _one("best_of")
    suffix: Annotated[str, Field(max_length=0)] | None = Field(
        None, description="suffix is not supported"
    )

    def prompt_text_or_ids(self) -> str | list[int]:
        p = self.prompt
        if isinstance(p, str):
            return p
        first = p[0]
        if isinstance(first, int):
            return list(p)  # type: ignore[arg-type]
        return first if isinstance(first, str) else list(first)


class TextPart(_Body):
    type: Literal["text"]
    text: Text


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | Annotated[list[TextPart], Field(min_length=1)]
    name: Text | None = None

    def as_template_input(self) -> dict[str, str]:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        # Chat templates predate the "developer" role: it means system.
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ResponseFormat(_Body):
    type: Literal["text"] = Field(description="Only plain text output is supported")


class ChatCompletionRequest(SamplingRequest):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    logprobs: FalseOnly | None = Field(None, description="logprobs are not supported")
    top_logprobs: int | None = Field(None, ge=0, le=0, description="logprobs are not supported")
    tools: Annotated[list[Any], Field(max_length=0)] | None = Field(
        None, description="Tool calling is not supported"
    )
    tool_choice: Literal["none"] | None = None
    response_format: ResponseFormat | None = None

    @field_validator("messages")
    @classmethod
    def _last_not_tool_only(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if all(m.role in ("system", "developer") for m in messages):
            raise ValueError("messages need at least one user or assistant message")
        return messages

    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def describe_validation_error(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """A short message naming each bad field, and the first field as OpenAI's `param`.

    Union fields (prompt, stop, content) fail once per alternative; the most specific error
    wins over plain "wrong type" ones, so `["a", "b"]` says "at most 1 item", not "not a str".
    """
    by_field: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for err in errors:
        # Drop pydantic's union-branch tags such as "list[constrained-int]" from the path.
        path = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        by_field.setdefault(path.split(".")[0], []).append((path, err))
    parts, params = [], []
    for name, group in list(by_field.items())[:3]:
        specific = [e for e in group if not str(e[1]["type"]).endswith("_type")]
        path, err = (specific or group)[0]
        hint = _UNSUPPORTED_HINTS.get(name, "")
        parts.append(f"{path or 'body'}: {err['msg']}{hint}")
        params.append(path)
    return "; ".join(parts), params[0] or None


def _hints() -> dict[str, str]:
    fields = {**CompletionRequest.model_fields, **ChatCompletionRequest.model_fields}
    return {
        name: f" ({f.description})"
        for name, f in fields.items()
        if f.description and ("support" in f.description)
    }


_UNSUPPORTED_HINTS = _hints()
