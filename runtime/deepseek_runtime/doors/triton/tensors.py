"""Triton's tensors: what the two models declare, and requests in / responses out.

Inputs: text_input (BYTES, required), max_tokens (INT32), temperature and top_p (FP32),
top_k (INT32), seed (INT64), ignore_eos and stream (BOOL), stop (BYTES, any count).
Outputs: text_output (BYTES), finish_reason (BYTES, empty until the last response),
prompt_tokens and completion_tokens (INT32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepseek_runtime.doors.generation import Chunk


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


def declarations() -> tuple[list[Any], list[Any]]:
    from pytriton.model_config import Tensor

    def opt(name: str, dtype: Any, shape: tuple[int, ...] = (1,)) -> Any:
        return Tensor(name=name, shape=shape, dtype=dtype, optional=True)

    inputs = [
        Tensor(name="text_input", shape=(1,), dtype=bytes),
        opt("max_tokens", np.int32),
        opt("temperature", np.float32),
        opt("top_p", np.float32),
        opt("top_k", np.int32),
        opt("seed", np.int64),
        opt("ignore_eos", np.bool_),
        opt("stream", np.bool_),
        opt("stop", bytes, (-1,)),
    ]
    outputs = [
        Tensor(name="text_output", shape=(1,), dtype=bytes),
        Tensor(name="finish_reason", shape=(1,), dtype=bytes),
        Tensor(name="prompt_tokens", shape=(1,), dtype=np.int32),
        Tensor(name="completion_tokens", shape=(1,), dtype=np.int32),
    ]
    return inputs, outputs


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


def output(text: str, chunk: Chunk | None, batched: bool = False) -> dict[str, np.ndarray]:
    """One response; `batched` adds the leading batch dimension the _sync model expects."""
    out = {
        "text_output": np.array([text.encode("utf-8")], dtype=object),
        "finish_reason": np.array([((chunk and chunk.finish_reason) or "").encode()], dtype=object),
        "prompt_tokens": np.array([chunk.prompt_tokens if chunk else 0], dtype=np.int32),
        "completion_tokens": np.array([chunk.completion_tokens if chunk else 0], dtype=np.int32),
    }
    return {k: v[np.newaxis] for k, v in out.items()} if batched else out


def error_output(exc: BaseException) -> dict[str, np.ndarray]:
    out = output("", None, batched=True)
    out["finish_reason"] = np.array([[f"error: {exc}".encode()]], dtype=object)
    return out
