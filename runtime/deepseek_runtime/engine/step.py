"""What one forward pass computes: the runner's whole per-step input. No torch here.

Plain, small and frozen, so it can be sent as is to other ranks that run their shard of the
same forward (tensor parallelism): with it and the block size, a rank knows which tokens to
run, at which positions, and which KV slots to write and read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class WorkItem:
    """One sequence's share of a step."""

    seq_id: int
    token_ids: tuple[int, ...]  # tokens whose KV this step computes (a prompt's uncached suffix,
    # or the last sampled token); the logits of the last one are sampled
    start: int  # position of token_ids[0]: the tokens already in the cache before it
    block_table: tuple[int, ...]  # KV blocks holding positions [0, start + len(token_ids))

    @property
    def context_len(self) -> int:
        return self.start + len(self.token_ids)

    @property
    def positions(self) -> range:
        return range(self.start, self.context_len)


@dataclass(slots=True, frozen=True)
class StepInput:
    items: tuple[WorkItem, ...]
    block_size: int

    @property
    def num_tokens(self) -> int:
        return sum(len(item.token_ids) for item in self.items)
