"""Incremental detokenization never splits a character and loses nothing (no torch)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.engine.detokenizer import IncrementalDetokenizer

SPECIAL = 256  # one special token past the 256 byte tokens


class ByteTokenizer:
    """One token per UTF-8 byte, like byte-level BPE at its worst; 256 is a special token."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        data = bytes(t for t in token_ids if t < SPECIAL)
        return data.decode("utf-8", errors="replace")


def stream(prompt: str, text: str, final_token: list[int] | None = None) -> list[str]:
    tok = ByteTokenizer()
    detok = IncrementalDetokenizer(tok, tok.encode(prompt))
    output = tok.encode(text) + (final_token or [])
    return [detok.step([t], final=i == len(output) - 1) for i, t in enumerate(output)]


def test_multibyte_characters_are_held_until_complete() -> None:
    deltas = stream("Q: ", "é🚀")
    assert deltas == ["", "é", "", "", "", "🚀"]


def test_special_tokens_add_no_text() -> None:
    assert stream("x", "ok", [SPECIAL]) == ["o", "k", ""]


def test_a_broken_character_is_flushed_at_the_end() -> None:
    detok = IncrementalDetokenizer(ByteTokenizer(), [65])
    assert detok.step([0xF0, 0x9F]) == ""
    assert detok.step([], final=True) == "\ufffd"


@settings(deadline=None)  # CI shares 2 cores with other suites
@given(prompt=st.text(max_size=10), text=st.text(max_size=30))
def test_deltas_join_to_the_text_and_hold_no_replacement_char(prompt: str, text: str) -> None:
    deltas = stream(prompt, text)
    assert "".join(deltas) == text
    if "\ufffd" not in text:
        assert not any("\ufffd" in d for d in deltas)


def test_the_window_stays_short_however_long_the_output() -> None:
    """Constant work per token (issue 15, item 11): the detokenizer never holds the whole
    sequence; bench/sequence_step.py times it at 1k and 16k tokens."""
    tok = ByteTokenizer()
    detok = IncrementalDetokenizer(tok, tok.encode("prompt " * 100))
    text = "".join(detok.step([t]) for t in tok.encode("a long answer, é🚀 " * 500))
    assert text == "a long answer, é🚀 " * 500
    assert len(detok._window) <= 8 and detok.consumed == len(tok.encode(text))
