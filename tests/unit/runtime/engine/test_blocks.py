"""The block manager: reservations, ref counts, prefix hits, LRU eviction, tenants (no torch)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_runtime.engine.blocks import BlockManager, blocks_for

BS = 4


def manager(blocks: int = 16, caching: bool = True) -> BlockManager:
    return BlockManager(blocks, BS, prefix_caching=caching)


def run(m: BlockManager, seq_id: int, prompt: list[int], new: int = 0, tenant: str = "a") -> None:
    """Admit, compute the prompt and `new` more tokens, name the full blocks."""
    m.admit(seq_id, tenant, prompt, len(prompt) + max(new, 1))
    tokens = list(prompt) + [1000 + i for i in range(new)]
    m.ensure(seq_id, len(tokens))
    m.commit(seq_id, tokens)


def test_a_repeated_prompt_hits_its_full_blocks_and_counts_tokens() -> None:
    m = manager()
    prompt = list(range(10))  # 2 full blocks + 2 tokens
    run(m, 1, prompt)
    m.release(1)
    assert m.usage().cached == 2 and m.usage().used == 0
    table = m.admit(2, "a", prompt, 11)
    assert table.cached_tokens == 8 and len(table.blocks) == 2
    assert m.query_tokens == 20 and m.hit_tokens == 8
    assert m.usage().cached == 0 and m.usage().used == 2  # revived, referenced again


def test_the_last_prompt_token_is_always_computed() -> None:
    m = manager()
    run(m, 1, list(range(8)))  # exactly 2 full blocks
    m.release(1)
    assert m.admit(2, "a", list(range(8)), 9).cached_tokens == 4  # the 2nd block holds the last


def test_a_different_token_stops_the_match_at_its_block() -> None:
    m = manager()
    run(m, 1, list(range(12)))
    m.release(1)
    changed = list(range(12))
    changed[5] = 99  # inside the second block
    assert m.admit(2, "a", [*changed, 0], 14).cached_tokens == 4


def test_generated_tokens_are_cached_too_so_the_next_turn_hits_them() -> None:
    m = manager()
    run(m, 1, list(range(6)), new=6)  # 12 tokens computed: 3 full blocks
    m.release(1)
    next_turn = list(range(6)) + [1000 + i for i in range(6)] + [7, 7, 7]
    assert m.admit(2, "a", next_turn, 20).cached_tokens == 12


def test_tenants_never_share_a_prefix() -> None:
    m = manager()
    run(m, 1, list(range(9)), tenant="alice")
    m.release(1)
    assert m.admit(2, "bob", list(range(9)), 10).cached_tokens == 0
    assert m.admit(3, "alice", list(range(9)), 10).cached_tokens == 8


def test_unreferenced_cached_blocks_are_evicted_least_recent_first() -> None:
    m = manager(blocks=4)
    run(m, 1, [1] * 5)  # blocks: [1111] + 1 partial
    m.release(1)
    run(m, 2, [2] * 5)
    m.release(2)
    assert m.usage().cached == 2  # one full block each; the partial ones went back free
    m.admit(3, "a", [3] * 12, 12)  # needs 3 blocks: 2 free, then evicts the oldest (prompt 1)
    m.ensure(3, 12)
    assert m.usage().cached == 1
    m.release(3)
    assert m.match("a", [1] * 5) == []
    assert len(m.match("a", [2] * 5)) == 1


def test_referenced_blocks_are_never_evicted_and_admission_waits() -> None:
    m = manager(blocks=4)
    m.admit(1, "a", [1] * 8, 12)  # reserves 3 of 4
    assert not m.can_admit(8, [])
    assert m.can_admit(4, [])
    m.ensure(1, 12)
    with pytest.raises(RuntimeError):
        m.ensure(1, 13)  # past its reservation


def test_reserved_blocks_are_promised_so_growth_never_fails() -> None:
    m = manager(blocks=6)
    m.admit(1, "a", [1] * 2, 12)  # 3 blocks promised, 1 taken so far
    m.ensure(1, 2)
    assert m.available == 3
    m.admit(2, "a", [2] * 2, 12)
    assert m.available == 0
    m.ensure(1, 12)
    m.ensure(2, 12)  # both grow to their reservation: never out of blocks
    m.release(1)
    m.release(2)
    assert m.available == 6 and m.usage().used == 0


def test_equal_prompts_at_once_keep_one_cached_copy() -> None:
    m = manager()
    run(m, 1, list(range(9)))
    run(m, 2, list(range(9)))  # admitted before 1 finished: computed again
    m.release(1)
    m.release(2)
    assert m.usage().cached == 2  # seq 2's duplicate blocks went back to the free list
    assert len(m.match("a", list(range(9)))) == 2


def test_no_caching_means_no_hits_and_no_counting() -> None:
    m = manager(caching=False)
    run(m, 1, list(range(9)))
    m.release(1)
    assert m.admit(2, "a", list(range(9)), 10).cached_tokens == 0
    assert m.usage().cached == 0 and m.query_tokens == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 20), st.integers(0, 8)), max_size=30))
def test_accounting_invariants_under_any_traffic(ops: list[tuple[int, int, int]]) -> None:
    """Used + cached + free is the pool; what is promised is always there to take."""
    m = manager(blocks=12)
    live: list[int] = []
    for i, (kind, prompt_len, new) in enumerate(ops):
        prompt = [kind] * prompt_len
        if m.can_admit(prompt_len + new + 1, m.match("a", prompt)):
            run(m, i, prompt, new)
            live.append(i)
        elif live:
            m.release(live.pop(0))
        usage = m.usage()
        assert usage.used + usage.cached <= usage.total
        assert m.available >= 0
        held = sum(len(t.blocks) for t in m.tables.values())
        assert usage.used <= held  # shared blocks count once
    for seq_id in live:
        m.release(seq_id)
    assert m.usage().used == 0 and m.available == 12
    assert blocks_for(17, BS) == 5
