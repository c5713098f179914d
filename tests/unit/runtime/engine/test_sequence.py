"""Sequence limits and stop strings (pure Python, no torch)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.engine.protocol import SamplingParams
from deepseek_runtime.engine.sequence import Sequence, SequenceStatus, StopText

EOS = 2


def make(max_tokens: int = 4, **params: object) -> Sequence:
    return Sequence(
        seq_id=1,
        prompt_token_ids=(5, 6, 7),
        params=SamplingParams(max_tokens=max_tokens, **params),  # type: ignore[arg-type]
        max_tokens=max_tokens,
        eos_token_ids=frozenset({EOS, 3}),
    )


def test_eos_finishes_with_stop_and_counts_the_token() -> None:
    seq = make()
    seq.append_token(9)
    seq.append_token(3)  # any of the eos ids
    assert seq.is_finished and seq.finish_reason == "stop"
    assert seq.output_token_ids == [9, 3]
    assert seq.num_tokens == 5 and seq.last_token_id == 3


def test_max_tokens_finishes_with_length() -> None:
    seq = make(max_tokens=2)
    seq.append_token(9)
    assert not seq.is_finished
    seq.append_token(10)
    assert seq.finish_reason == "length"


def test_ignore_eos_runs_to_max_tokens() -> None:
    seq = make(max_tokens=2, ignore_eos=True)
    seq.append_token(EOS)
    assert not seq.is_finished
    seq.append_token(EOS)
    assert seq.finish_reason == "length"


def test_first_finish_reason_wins_except_stop_string_over_length() -> None:
    seq = make(max_tokens=1, stop=("END",))
    seq.append_token(9)
    assert seq.finish_reason == "length"
    seq.add_text("xEND")  # the last allowed token also completed a stop string
    assert seq.finish_reason == "stop"
    seq.finish("abort")
    assert seq.finish_reason == "stop"


def test_kv_reservation_and_validation() -> None:
    seq = make(max_tokens=4)
    assert seq.kv_reservation == 7 and seq.status is SequenceStatus.WAITING
    with pytest.raises(ValueError):
        Sequence(1, (), SamplingParams(), 4)
    with pytest.raises(ValueError):
        Sequence(1, (1,), SamplingParams(), 0)


def test_stop_string_cuts_text_before_it() -> None:
    out = StopText(stops=("\n\nUser:",))
    assert not out.add("Hello")
    assert out.take(final=False) == ""  # could still be the start of a stop string
    assert not out.add(" world\n")
    assert out.add("\nUser: more")
    assert out.take(final=True) == "Hello world"


def test_no_stop_strings_means_no_holdback() -> None:
    out = StopText()
    out.add("abc")
    assert out.take(final=False) == "abc"


def _chunks(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _oracle(chunks: list[str], stops: list[str]) -> tuple[str, bool]:
    """Non-incremental reference: after each chunk, cut at the earliest stop in all the text."""
    acc = ""
    for chunk in chunks:
        acc += chunk
        found = [acc.find(s) for s in stops if s in acc]
        if found:
            return acc[: min(found)], True
    return acc, False


@settings(deadline=None)  # CI shares 2 cores with other suites
@given(
    text=st.text(alphabet="abxyz\n", max_size=40),
    stops=st.lists(st.text(alphabet="abxyz\n", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=10),
)
def test_streamed_text_matches_the_reference(text: str, stops: list[str], cuts: list[int]) -> None:
    """However the text is chunked: no retraction, no stop string leaks, same cut as the oracle."""
    chunks = _chunks(text, cuts)
    out = StopText(stops=tuple(stops))
    seen, stopped = "", False
    for chunk in chunks:
        stopped = out.add(chunk)
        seen += out.take(final=stopped)
        assert text.startswith(seen)
        if stopped:
            break
    seen += out.take(final=True)
    assert (seen, stopped) == _oracle(chunks, stops)
    assert not any(s in seen for s in stops)
