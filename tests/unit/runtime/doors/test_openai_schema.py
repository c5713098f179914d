"""Request models: what they accept, what they refuse and how the refusal reads."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # schemathesis's own validator
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deepseek_runtime.doors.openai.openapi import openapi_document
from deepseek_runtime.doors.openai.schema import (
    ChatCompletionRequest,
    CompletionRequest,
    describe_validation_error,
)

USER = [{"role": "user", "content": "hi"}]


def refusal(model: Any, body: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as err:
        model.model_validate(body)
    return describe_validation_error(err.value.errors(include_url=False))


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("hi", "hi"), ([1, 2], [1, 2]), (["hi"], "hi"), ([[3, 4]], [3, 4])],
)
def test_prompt_forms(prompt: Any, expected: Any) -> None:
    assert CompletionRequest.model_validate({"prompt": prompt}).prompt_text_or_ids() == expected


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": "x", "n": 2}, "n", "n=1"),
        ({"prompt": ["a", "b"]}, "prompt", "at most 1"),
        ({"prompt": "x", "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"prompt": "x", "temperature": "1"}, "temperature", "valid number"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"prompt": "x", "stream": "yes"}, "stream", "boolean"),
        ({"prompt": "x", "stop": ["a"] * 17}, "stop", "at most 16"),
        ({"prompt": "\ud800"}, "prompt", "lone surrogates"),
        ({"prompt": "x", "echo": True}, "echo", "not supported"),
        ({"prompt": "x", "presence_penalty": 0.5}, "presence_penalty", "not supported"),
        ({}, "prompt", "Field required"),
    ],
)
def test_completion_refusals_name_the_field(body: dict, param: str, words: str) -> None:
    message, got = refusal(CompletionRequest, body)
    assert got == param
    assert words in message and param in message


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "'user'"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages.0.content.0.type", "'text'"),
        ({"messages": USER, "tools": [{"type": "function"}]}, "tools", "not supported"),
        ({"messages": USER, "response_format": {"type": "json_object"}},
         "response_format.type", "'text'"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages", "user or assistant"),
    ],
)  # fmt: skip
def test_chat_refusals_name_the_field(body: dict, param: str, words: str) -> None:
    message, got = refusal(ChatCompletionRequest, body)
    assert got == param
    assert words in message


def test_chat_accepts_text_parts_and_developer_role() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "developer", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": "a"},
                                                   {"type": "text", "text": "b"}]}],
         "max_completion_tokens": 5, "stream_options": {"include_usage": True}}
    )  # fmt: skip
    assert [m.as_template_input() for m in body.messages] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]
    assert body.output_limit() == 5


def test_unknown_fields_are_ignored() -> None:
    assert CompletionRequest.model_validate({"prompt": "x", "metadata": {"a": 1}}).prompt == "x"


def test_openapi_document_shape() -> None:
    doc = openapi_document(auth=True, metrics_auth=False)
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/audit", "/health",
            "/ready", "/metrics"} <= set(doc["paths"])  # fmt: skip
    assert doc["paths"]["/metrics"]["get"]["security"] == []  # open by default
    assert "security" not in openapi_document(True, metrics_auth=True)["paths"]["/metrics"]["get"]
    assert "securitySchemes" not in openapi_document(auth=False)["components"]


def _schema(name: str) -> dict[str, Any]:
    doc = openapi_document(auth=False)
    return {**doc["components"]["schemas"][name], "components": doc["components"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from(["prompt", "max_tokens", "temperature", "n", "stop", "stream", "seed"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3), st.text(max_size=3),
              st.lists(st.integers(0, 9), max_size=3), st.lists(st.text(max_size=2), max_size=2)),
))  # fmt: skip
def test_schema_and_validator_agree(body: dict[str, Any]) -> None:
    """What the published schema accepts, the server accepts, and the other way round."""
    schema = _schema("CompletionRequest")
    schema_ok = jsonschema_rs.Draft202012Validator(schema).is_valid(body)
    try:
        CompletionRequest.model_validate(body)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert schema_ok == model_ok, body
