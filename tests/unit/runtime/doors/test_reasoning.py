"""<think> splitting: streamed in any chunking equals the whole-text split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.doors.reasoning import (
    ReasoningSplitter,
    prompt_opens_reasoning,
    split_reasoning,
    tokenizer_has_think_tags,
)


@pytest.mark.parametrize(
    ("text", "in_reasoning", "expected"),
    [
        ("<think>plan</think>\n\nanswer", False, ("plan", "answer")),
        ("  <think>plan</think>answer", False, ("plan", "answer")),
        ("plan</think>\n\nanswer", True, ("plan", "answer")),
        ("no reasoning here", False, (None, "no reasoning here")),
        ("<think>unfinished", False, ("unfinished", "")),
        ("<think></think>answer", False, ("", "answer")),
        ("a <think> later is content", False, (None, "a <think> later is content")),
    ],
)
def test_split(text: str, in_reasoning: bool, expected: tuple[str | None, str]) -> None:
    assert split_reasoning(text, in_reasoning) == expected


def test_prompt_that_ends_in_think_starts_in_reasoning() -> None:
    assert prompt_opens_reasoning("<|Assistant|><think>\n")
    assert not prompt_opens_reasoning("<|Assistant|>")


def test_tokenizer_detection() -> None:
    class Tok:
        def get_vocab(self) -> dict[str, int]:
            return {"<think>": 1, "</think>": 2}

    assert tokenizer_has_think_tags(Tok())
    assert not tokenizer_has_think_tags(object())


@settings(max_examples=400, deadline=None)
@given(
    reasoning=st.text(alphabet="ab<>/ tk", max_size=20).filter(lambda s: "</think>" not in s),
    content=st.text(alphabet="ab<>/ tk", max_size=20),
    opened=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=12),
)
def test_streaming_matches_whole_text(
    reasoning: str, content: str, opened: bool, cuts: list[int]
) -> None:
    text = ("" if opened else "<think>") + reasoning + "</think>" + content
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    splitter = ReasoningSplitter(opened)
    parts = [splitter.feed(c) for c in chunks] + [splitter.feed("", final=True)]
    streamed = ("".join(p[0] for p in parts), "".join(p[1] for p in parts))
    whole = split_reasoning(text, opened)
    assert streamed == (whole[0] or "", whole[1])
    assert streamed == (reasoning, content.lstrip())
