"""The scheduler's limits, the engine config's checks and request admission (no torch)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.engine.config import EngineConfig
from deepseek_runtime.engine.protocol import (
    GenerationRequest,
    InvalidRequestError,
    PromptTooLongError,
    SamplingParams,
)
from deepseek_runtime.engine.requests import make_sequence
from deepseek_runtime.engine.scheduler import Scheduler
from deepseek_runtime.engine.sequence import Sequence, SequenceStatus


def seq(seq_id: int, prompt_len: int = 4, max_tokens: int = 4) -> Sequence:
    return Sequence(seq_id, tuple(range(1, prompt_len + 1)), SamplingParams(), max_tokens)


def scheduler(
    seqs: int = 4, tokens: int = 64, kv: int = 1000, block: int = 1, caching: bool = False
) -> Scheduler:
    """One-token blocks make KV blocks and tokens the same count."""
    return Scheduler(max_num_seqs=seqs, max_num_batched_tokens=tokens, kv_cache_tokens=kv,
                     block_size=block, prefix_caching=caching)  # fmt: skip


def test_prefill_first_then_decode_everyone() -> None:
    s = scheduler()
    a, b = seq(1), seq(2)
    s.add(a)
    s.add(b)
    batch = s.schedule()
    assert batch.prefill == [a, b] and batch.decode == []
    assert a.status is SequenceStatus.RUNNING and s.num_waiting == 0
    s.postprocess(batch, [7, 8])
    batch = s.schedule()
    assert batch.prefill == [] and batch.decode == [a, b]
    assert a.output_token_ids == [7]


def test_max_num_seqs_keeps_the_rest_waiting() -> None:
    s = scheduler(seqs=2)
    for i in range(5):
        s.add(seq(i))
    assert len(s.schedule().prefill) == 2
    assert s.num_waiting == 3 and s.num_running == 2
    assert s.schedule().decode  # full: no admission, only decode


def test_batched_tokens_count_padding_to_the_longest_prompt() -> None:
    s = scheduler(tokens=20)
    s.add(seq(1, prompt_len=4))
    s.add(seq(2, prompt_len=8))  # 2 x 8 = 16 padded tokens: fits
    s.add(seq(3, prompt_len=5))  # 3 x 8 = 24: next step
    batch = s.schedule()
    assert [q.seq_id for q in batch.prefill] == [1, 2] and batch.prefill_tokens == 16
    assert [q.seq_id for q in s.schedule().prefill] == [3]


def test_a_prompt_longer_than_the_budget_runs_alone() -> None:
    s = scheduler(tokens=8)
    s.add(seq(1, prompt_len=30))
    s.add(seq(2, prompt_len=2))
    assert [q.seq_id for q in s.schedule().prefill] == [1]
    assert [q.seq_id for q in s.schedule().prefill] == [2]


def test_kv_budget_counts_the_reservations_fifo() -> None:
    s = scheduler(kv=30)
    s.add(seq(1, prompt_len=6, max_tokens=6))  # 12
    s.add(seq(2, prompt_len=14, max_tokens=6))  # 12 + 20 = 32 > 30: waits
    s.add(seq(3, prompt_len=1, max_tokens=1))  # would fit, but does not overtake
    assert [q.seq_id for q in s.schedule().prefill] == [1]
    assert s.reserved_tokens == 12 and s.num_waiting == 2
    with pytest.raises(ValueError):
        s.add(seq(4, prompt_len=21, max_tokens=10))  # could never fit


def test_mixed_long_and_short_prompts_cost_the_sum_of_their_blocks() -> None:
    """The paged cache costs each sequence its own blocks: one long prompt among short ones
    no longer costs rows x the longest (issue 15, item 10, before paging)."""
    s = scheduler(seqs=16, tokens=10_000, kv=600, block=16)
    s.add(seq(0, prompt_len=200, max_tokens=40))  # 240 tokens: 15 blocks
    for i in range(1, 11):
        s.add(seq(i, prompt_len=10, max_tokens=40))  # 50 tokens: 4 blocks each
    first = s.schedule().prefill
    assert [q.seq_id for q in first] == list(range(0, 6))  # 15 + 5 x 4 = 35 of 37 blocks
    assert s.reserved_tokens == 35 * 16 <= 600
    s.abort(0)
    assert len(s.schedule().prefill) == 4  # 17 blocks free: 4 more, the last one waits


def test_reap_frees_slots_and_reservation() -> None:
    s = scheduler(seqs=1)
    a, b = seq(1, max_tokens=1), seq(2)
    s.add(a)
    s.add(b)
    batch = s.schedule()
    s.postprocess(batch, [9])
    assert s.reap() == [a] and a.finish_reason == "length"
    assert s.reserved_tokens == 0
    assert s.schedule().prefill == [b]


def test_abort_from_waiting_and_running() -> None:
    s = scheduler(seqs=1)
    a, b = seq(1), seq(2)
    s.add(a)
    s.add(b)
    s.schedule()
    assert s.abort(2) is b and b.finish_reason == "abort" and s.num_waiting == 0
    assert s.abort(1) is a and s.num_running == 0 and s.reserved_tokens == 0
    assert s.abort(1) is None
    assert not s.has_work()


def test_postprocess_checks_lengths() -> None:
    s = scheduler()
    s.add(seq(1))
    with pytest.raises(ValueError):
        s.postprocess(s.schedule(), [1, 2])


@settings(max_examples=60, deadline=None)
@given(
    prompts=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    max_seqs=st.integers(1, 5),
    budget=st.integers(5, 64),
)
def test_limits_hold_and_everything_finishes(
    prompts: list[int], max_seqs: int, budget: int
) -> None:
    budget = max(budget, max_seqs)
    s = scheduler(seqs=max_seqs, tokens=budget, kv=200)
    for i, n in enumerate(prompts):
        s.add(seq(i, prompt_len=n, max_tokens=3))
    finished: list[Sequence] = []
    for _ in range(10 * len(prompts) + 10):
        if not s.has_work():
            break
        batch = s.schedule()
        assert s.num_running <= max_seqs
        assert len(batch.prefill) == 1 or batch.prefill_tokens <= budget
        assert s.reserved_tokens == sum(q.kv_reservation for q in s.running) <= 200
        s.postprocess(batch, [0] * len(batch.seqs))
        finished += s.reap()
    assert sorted(q.seq_id for q in finished) == list(range(len(prompts)))
    assert s.reserved_tokens == 0


def test_engine_config_is_checked() -> None:
    assert EngineConfig().max_num_seqs == 32
    assert EngineConfig(torch_threads=3).resolved_torch_threads() == 3
    assert EngineConfig().resolved_torch_threads() >= 1
    for bad in (
        {"max_num_seqs": 0},
        {"max_queue": 0},
        {"max_model_len": 0},
        {"torch_threads": 0},
        {"stream_interval_tokens": 0},
        {"max_num_seqs": 64, "max_num_batched_tokens": 32},
    ):
        with pytest.raises(ValueError):
            EngineConfig(**bad)  # type: ignore[arg-type]


def request(prompt: tuple[int, ...], max_tokens: int | None = 16) -> GenerationRequest:
    return GenerationRequest("r", prompt, SamplingParams(max_tokens=max_tokens))


def admit(prompt_len: int, max_tokens: int | None, context: int = 32, default: int = 8) -> int:
    """max_tokens the engine gives a request (make_sequence: context 32, default 8)."""
    seq = make_sequence(
        0, request((1,) * prompt_len, max_tokens), context, 50, frozenset(), default
    )
    return seq.max_tokens


@pytest.mark.parametrize(
    ("prompt_len", "asked", "given"),
    [
        (10, 5, 5),  # explicit and fits
        (10, 22, 22),  # exactly the rest of the context
        (10, None, 8),  # unset: the rest, capped by the server's default
        (28, None, 4),  # unset, less left than the default: the rest
        (31, None, 1),
    ],
)
def test_the_max_tokens_policy(prompt_len: int, asked: int | None, given: int) -> None:
    assert admit(prompt_len, asked) == given


def test_an_explicit_max_tokens_that_cannot_fit_is_refused_with_the_numbers() -> None:
    with pytest.raises(PromptTooLongError, match=r"context is 32 tokens, but 10 prompt tokens "
                       r"plus max_tokens=23 need 33; ask for at most 22"):  # fmt: skip
        admit(10, 23)


def test_admission_rejects_what_cannot_run() -> None:
    with pytest.raises(PromptTooLongError, match="the prompt is 32 tokens"):
        admit(32, None)
    with pytest.raises(InvalidRequestError):
        make_sequence(0, request(()), 32, 50, frozenset(), 8)
    with pytest.raises(InvalidRequestError, match="vocabulary"):
        make_sequence(0, request((1, 50)), 32, 50, frozenset(), 8)
    with pytest.raises(InvalidRequestError):
        make_sequence(0, request((-1,)), 32, 50, frozenset(), 8)
    assert make_sequence(0, request((1,)), 32, 50, frozenset({2}), 8).eos_token_ids == {2}


def test_a_cached_prefix_only_prefills_its_suffix() -> None:
    s = scheduler(kv=1000, block=4, caching=True)
    first = seq(1, prompt_len=10, max_tokens=1)
    s.add(first)
    batch = s.schedule()
    assert (
        batch.step.items[0].token_ids == first.prompt_token_ids and batch.step.items[0].start == 0
    )
    s.postprocess(batch, [7])
    s.reap()  # finished: its 2 full blocks stay cached
    again = seq(2, prompt_len=10, max_tokens=3)
    s.add(again)
    batch = s.schedule()
    (item,) = batch.step.items
    assert again.cached_tokens == 8 and item.start == 8 and item.token_ids == (9, 10)
    assert batch.prefill_tokens == 2
    s.postprocess(batch, [5])
    decode = s.schedule().step.items[0]
    assert decode.token_ids == (5,) and decode.start == 10 and len(decode.block_table) == 3
    assert s.blocks.query_tokens == 20 and s.blocks.hit_tokens == 8
