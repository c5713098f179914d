"""The step messages rank 0 sends the other ranks survive their wire form exactly."""

from __future__ import annotations

import pytest

from deepseek_runtime.engine.step import StepInput, WorkItem
from deepseek_runtime.parallel.steps import Message, Open, Reset, Stop, decode, encode

PREFILL_AND_DECODE = StepInput(
    (
        WorkItem(seq_id=7, token_ids=(5, 9, 11, 2), start=32, block_table=(3, 8, 1)),
        WorkItem(seq_id=12, token_ids=(40,), start=0, block_table=(0,)),
        WorkItem(seq_id=1 << 40, token_ids=(1,), start=4095, block_table=tuple(range(256))),
    ),
    block_size=16,
)


@pytest.mark.parametrize(
    "message", [PREFILL_AND_DECODE, Open(1024, 16, 0), Reset(), Stop()], ids=type
)
def test_every_message_round_trips(message: Message) -> None:
    words = encode(message)
    assert all(isinstance(w, int) for w in words)  # numbers only: nothing to unpickle
    assert decode(words) == message


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown step message kind 9"):
        decode([9, 1, 2])
