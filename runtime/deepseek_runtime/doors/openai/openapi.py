"""The OpenAPI 3.1 document served at /openapi.json (what schemathesis fuzzes).

Request bodies come from the pydantic models that validate them; responses are written out
by hand and list every status the server can answer, so "undocumented status" is a bug.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from deepseek_runtime.doors.openai.schema import ChatCompletionRequest, CompletionRequest

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING, _INTEGER, _NULLABLE = {"type": "string"}, {"type": "integer"}, {"type": ["string", "null"]}
_TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE = _object(list(_TOKENS), **dict.fromkeys(_TOKENS, _INTEGER))
_FINISH = {"enum": ["stop", "length", "abort", "content_filter", None]}
_ERROR = _object(
    ["error"],
    error=_object(
        ["message", "type", "param", "code"],
        message=_STRING,
        type=_STRING,
        param=_NULLABLE,
        code=_NULLABLE,
    ),
)
_MODEL = _object(
    ["id", "object", "created", "owned_by"],
    id=_STRING,
    object={"const": "model"},
    created=_INTEGER,
    owned_by=_STRING,
    max_model_len=_INTEGER,
)


def _completion(choice: dict[str, Any], obj: str) -> dict[str, Any]:
    return _object(
        ["id", "object", "created", "model", "choices"],
        id=_STRING,
        object={"const": obj},
        created=_INTEGER,
        model=_STRING,
        usage=_USAGE,
        choices={"type": "array", "items": choice},
    )


def _list(items: dict[str, Any], **more: Any) -> dict[str, Any]:
    array = {"type": "array", "items": items}
    return _object(["object", "data"], object={"const": "list"}, data=array, **more)


_TEXT_CHOICE = _object(
    ["index", "text", "finish_reason"], index=_INTEGER, text=_STRING, finish_reason=_FINISH
)
_CHAT_CHOICE = _object(
    ["index", "message", "finish_reason"],
    index=_INTEGER,
    finish_reason=_FINISH,
    message=_object(
        ["role", "content"],
        role={"const": "assistant"},
        content=_STRING,
        reasoning_content=_NULLABLE,
    ),
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Invalid request",
        401: "Missing or invalid API key",
        403: "The key's role does not allow this",
        404: "Not found",
        405: "Method not allowed",
        413: "Request body too large",
        429: "Rate limited or queue full (see Retry-After)",
        503: "Loading or shutting down",
    }
    return {str(s): _json(_ref("Error"), words[s]) for s in statuses}


def _generate_op(body: str, result: str, summary: str) -> dict[str, Any]:
    ok = _json(_ref(result), "The completion; with stream=true, server-sent events")
    # OpenAPI 3.1 without itemSchema: `schema` describes ONE event, as schemathesis reads it.
    event = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
    ok["content"]["text/event-stream"] = {"schema": event}
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(body)}},
            },
            "responses": {"200": ok, **_errors(400, 401, 403, 404, 405, 413, 429, 503)},
        }
    }


def openapi_document(auth: bool, metrics_auth: bool = False) -> dict[str, Any]:
    _, defs = models_json_schema(
        [(CompletionRequest, "validation"), (ChatCompletionRequest, "validation")],
        ref_template=_REF,
    )
    schemas = {
        **defs["$defs"],
        "Error": _ERROR,
        "Model": _MODEL,
        "ModelList": _list(_ref("Model")),
        "Completion": _completion(_TEXT_CHOICE, "text_completion"),
        "ChatCompletion": _completion(_CHAT_CHOICE, "chat.completion"),
        "AuditLog": _list({"type": "object"}, next_cursor=_NULLABLE),
    }
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    open_: dict[str, Any] = {"security": []}
    paths: dict[str, Any] = {
        "/v1/models": {
            "get": {
                "summary": "List served models",
                "responses": {
                    "200": _json(_ref("ModelList"), "Models"),
                    **_errors(401, 403, 405, 429),
                },
            }
        },
        "/v1/models/{model}": {
            "get": {
                "summary": "One served model",
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(_ref("Model"), "Model"),
                    **_errors(401, 403, 404, 405, 429),
                },
            }
        },
        "/v1/completions": _generate_op("CompletionRequest", "Completion", "Text completion"),
        "/v1/chat/completions": _generate_op(
            "ChatCompletionRequest", "ChatCompletion", "Chat completion"
        ),
        "/v1/audit": {
            "get": {
                "summary": "Audit records, newest page first (auditor or admin)",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "next_cursor of the previous page",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(_ref("AuditLog"), "Audit records"),
                    **_errors(400, 401, 403, 404, 405, 429),
                },
            }
        },
        "/health": {
            "get": {**open_, "summary": "Liveness", "responses": {"200": text, **_errors(405)}}
        },
        "/ready": {
            "get": {
                **open_,
                "summary": "Readiness: engine loaded and warmed",
                "responses": {"200": text, **_errors(405, 503)},
            }
        },
        "/metrics": {
            "get": {
                **({} if metrics_auth else open_),
                "summary": "Prometheus metrics",
                "responses": {"200": text, **_errors(401, 403, 405, 429)},
            }
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "DeepSeek runtime", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
