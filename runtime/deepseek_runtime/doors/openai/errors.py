"""OpenAI-style JSON errors for every refusal, and request-body parsing that cannot crash.

Every error is `{"error": {"message", "type", "param", "code"}}` with a 4xx status that says
what is wrong; a 500 is a bug, and even then the body is JSON and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from deepseek_runtime.doors.openai.schema import describe_validation_error
from deepseek_runtime.engine.protocol import EngineError, QueueFullError
from deepseek_runtime.guards.keys import AuthError

log = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def error_response(err: ApiError) -> JSONResponse:
    body = {
        "error": {
            "message": err.message,
            "type": _TYPES.get(err.status, "server_error"),
            "param": err.param,
            "code": err.code,
        }
    }
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def to_api_error(exc: Exception) -> ApiError:
    """Maps the errors the layers below raise onto HTTP statuses."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AuthError):
        headers = retry_after(exc.retry_after_s) if exc.retry_after_s is not None else {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return ApiError(exc.status, exc.message, None, exc.code, headers)
    if isinstance(exc, QueueFullError):
        return ApiError(429, str(exc), None, "queue_full", retry_after(exc.retry_after_s))
    if isinstance(exc, EngineError):
        if exc.status_code == 500:  # 503s (loading, draining) are expected, not news
            log.warning("engine error: %s", exc)
        code = {400: "invalid_request", 503: "unavailable"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc), None, code)
    if isinstance(exc, HTTPException):
        return ApiError(exc.status_code, str(exc.detail), None, None, dict(exc.headers or {}))
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, "internal error; the server logged it", None, "internal_error")


async def handle_exception(request: Request, exc: Exception) -> Response:
    return error_response(to_api_error(exc))


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"request body larger than {limit} bytes", None, "body_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(
                    413, f"request body larger than {limit} bytes", None, "body_too_large"
                )
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise ApiError(400, "client disconnected while sending the body") from exc
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, model: type[Body]) -> Body:
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON object", None, "invalid_json")
    try:
        # Python's json accepts NaN/Infinity by default; JSON does not, and neither do we.
        value = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc}", None, "invalid_json"
        ) from exc
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object", None, "invalid_json")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        message, param = describe_validation_error(list(exc.errors(include_url=False)))
        raise ApiError(400, message, param, "invalid_value") from exc
    except RecursionError as exc:
        raise ApiError(400, "the request body is nested too deeply", None, "invalid_json") from exc
