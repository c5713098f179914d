"""The output filter: cut at the first match, however the text is chunked."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.guards.output_filter import FilterFileError, OutputFilter


def stream(flt: OutputFilter, chunks: list[str]) -> tuple[str, bool]:
    state = flt.stream()
    out = "".join(state.feed(c) for c in chunks[:-1]) + state.feed(chunks[-1], final=True)
    return out, state.matched


def test_load_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "filter.txt"
    path.write_text("# secrets\n\n(?i)password\n\\b\\d{3}-\\d{2}-\\d{4}\\b\n")
    flt = OutputFilter.load(path)
    assert len(flt.patterns) == 2
    assert flt.first_match("my PassWord is") == 3


def test_invalid_regex_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "filter.txt"
    path.write_text("ok\n(unclosed\n")
    with pytest.raises(FilterFileError, match=":2: invalid regex"):
        OutputFilter.load(path)


def test_match_cuts_the_text_before_it() -> None:
    flt = OutputFilter([re.compile("SSN: \\d+")])
    assert stream(flt, ["Sure, the ", "SSN: 12", "34 is yours"]) == ("Sure, the ", True)


def test_no_filter_passes_everything_at_once() -> None:
    state = OutputFilter([]).stream()
    assert state.feed("abc") == "abc"


def test_holdback_withholds_the_tail_until_final() -> None:
    state = OutputFilter([re.compile("zzz")], holdback=4).stream()
    assert state.feed("abcdefgh") == "abcd"
    assert state.feed("", final=True) == "efgh"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="abcxyz ", max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=10),
)
def test_streaming_equals_whole_text_for_matches_shorter_than_holdback(
    text: str, cuts: list[int]
) -> None:
    flt = OutputFilter([re.compile("xyz"), re.compile("ca?b")], holdback=8)
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]
    hit = flt.first_match(text)
    expected = text if hit is None else text[:hit]
    assert stream(flt, chunks) == (expected, hit is not None)
