"""The KV cache's block manager: fixed-size blocks, ref counts and prefix reuse. No torch here.

The KV cache (runner/kvcache.py) is a pool of `num_blocks` blocks of `block_size` token slots; a
sequence owns an ordered list of blocks (its block table) and token i of it lives in slot
`table[i // block_size] * block_size + i % block_size`.

Prefix reuse (as in vLLM and nano-vllm): once a block is full, its content is named by a
chained SHA-256 hash, of the previous block's hash and the block's token ids, so equal hashes
mean equal token prefixes, and equal KV. A later sequence whose prompt starts with the same
full blocks takes a reference on them instead of computing them again. The chain starts from
the tenant (the API key), so one tenant never finds another's prefix: a hit would leak, by its
timing, what another key asked.

A block nobody references any more stays cached (its hash still findable) until a new block is
needed and the free list is empty: then the least recently released cached block is evicted.

Admission reserves up front the blocks a sequence may come to need (prompt + max_tokens), so a
running sequence never waits for a block; blocks are taken when really needed, so a reserved
but unused tail leaves room for the cache meanwhile.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

BLOCK_SIZE = 16  # tokens per block (vLLM's default too)


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def root_hash(tenant: str) -> bytes:
    """The chain's start for one tenant: prefixes are never shared across tenants."""
    return hashlib.sha256(b"tenant\0" + tenant.encode()).digest()


def block_hash(parent: bytes, token_ids: Sequence[int]) -> bytes:
    digest = hashlib.sha256(parent)
    digest.update(b",".join(str(t).encode() for t in token_ids))
    return digest.digest()


@dataclass(slots=True)
class BlockTable:
    """One sequence's blocks, and how far they are filled and named."""

    tenant: str
    reserved: int  # blocks this sequence may come to hold, taken from the pool's promises
    blocks: list[int] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)  # of blocks[:len(hashes)], all full
    cached_tokens: int = 0  # prompt tokens found in the cache at admission


@dataclass(slots=True, frozen=True)
class BlockUsage:
    total: int  # blocks in the pool
    used: int  # referenced by a live sequence
    cached: int  # unreferenced but kept for reuse (evictable)


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int = BLOCK_SIZE, prefix_caching: bool = True):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be at least 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        # Dicts and a counter rather than lists of num_blocks: a huge budget costs nothing.
        self._refs: dict[int, int] = {}  # referenced blocks only
        self._hash_of: dict[int, bytes] = {}
        self._free: list[int] = []  # a heap of released ids: low ids first keep the pools small
        self._fresh = 0  # ids from here on were never handed out
        self._cached: dict[bytes, int] = {}  # hash -> block, referenced or not
        self._evictable: OrderedDict[int, None] = OrderedDict()  # unreferenced + hashed, LRU first
        self._promised = 0  # reserved but not yet taken, over all live tables
        self.tables: dict[int, BlockTable] = {}
        self.query_tokens = 0  # prompt tokens looked up (the hit rate's denominator)
        self.hit_tokens = 0

    # --- accounting ---

    @property
    def available(self) -> int:
        """Blocks a new reservation may claim."""
        return self._num_free + len(self._evictable) - self._promised

    @property
    def _num_free(self) -> int:
        return len(self._free) + self.num_blocks - self._fresh

    def usage(self) -> BlockUsage:
        cached = len(self._evictable)
        return BlockUsage(self.num_blocks, self.num_blocks - self._num_free - cached, cached)

    # --- prefix lookup and admission ---

    def match(self, tenant: str, token_ids: Sequence[int]) -> list[int]:
        """Cached blocks holding a prefix of `token_ids`. The last token is never matched: its
        logits are needed, so at least it is computed."""
        if not self.prefix_caching:
            return []
        found: list[int] = []
        parent = root_hash(tenant)
        bs = self.block_size
        for start in range(0, len(token_ids) - 1 - bs + 1, bs):
            parent = block_hash(parent, token_ids[start : start + bs])
            block = self._cached.get(parent)
            if block is None:
                break
            found.append(block)
        return found

    def can_admit(self, tokens: int, hit: Sequence[int]) -> bool:
        """Whether a sequence that may hold `tokens` KV tokens, reusing `hit`, fits now."""
        needed = blocks_for(tokens, self.block_size) - len(hit)
        revived = sum(1 for b in hit if b in self._evictable)  # leave the evictable set
        return needed <= self.available - revived

    def admit(
        self,
        seq_id: int,
        tenant: str,
        token_ids: Sequence[int],
        tokens: int,
        hit: list[int] | None = None,
    ) -> BlockTable:
        """Reserve a sequence's blocks (prompt `token_ids`, at most `tokens` in all) and take
        its cached prefix (`hit`, from match(), or looked up here)."""
        hit = self.match(tenant, token_ids) if hit is None else hit
        if not self.can_admit(tokens, hit):
            raise RuntimeError(f"sequence {seq_id} does not fit in the KV cache")
        table = BlockTable(tenant, blocks_for(tokens, self.block_size))
        for block in hit:
            self._ref(block)
            table.blocks.append(block)
            table.hashes.append(self._hash_of[block])
        table.cached_tokens = len(hit) * self.block_size
        self._promised += table.reserved - len(hit)
        self.tables[seq_id] = table
        if self.prefix_caching:
            self.query_tokens += len(token_ids)
            self.hit_tokens += table.cached_tokens
        return table

    # --- growth and naming ---

    def ensure(self, seq_id: int, tokens: int) -> list[int]:
        """Blocks for the first `tokens` tokens of a sequence (taking new ones as needed)."""
        table = self.tables[seq_id]
        needed = blocks_for(tokens, self.block_size)
        if needed > table.reserved:
            raise RuntimeError(f"sequence {seq_id} grew past its reservation")
        while len(table.blocks) < needed:
            table.blocks.append(self._take())
            self._promised -= 1
        return table.blocks

    def fills_a_block(self, seq_id: int, computed: int) -> bool:
        """Whether `computed` tokens fill a block not named yet (commit() has work)."""
        table = self.tables.get(seq_id)
        if not self.prefix_caching or table is None:
            return False
        return min(computed // self.block_size, len(table.blocks)) > len(table.hashes)

    def commit(self, seq_id: int, token_ids: Sequence[int]) -> None:
        """Name the blocks that `token_ids` (the tokens whose KV is now computed) fill."""
        if not self.prefix_caching:
            return
        table = self.tables[seq_id]
        bs = self.block_size
        full = min(len(token_ids) // bs, len(table.blocks))
        parent = table.hashes[-1] if table.hashes else root_hash(table.tenant)
        for i in range(len(table.hashes), full):
            parent = block_hash(parent, token_ids[i * bs : (i + 1) * bs])
            table.hashes.append(parent)
            block = table.blocks[i]
            # An equal block cached already (two equal prompts at once) keeps its place.
            if parent not in self._cached:
                self._cached[parent] = block
                self._hash_of[block] = parent

    def release(self, seq_id: int) -> None:
        """A sequence finished or left: drop its references and its unused promise."""
        table = self.tables.pop(seq_id, None)
        if table is None:
            return
        self._promised -= table.reserved - len(table.blocks)
        for block in reversed(table.blocks):  # a prefix's tail is evicted before its head
            self._refs[block] -= 1
            if self._refs[block]:
                continue
            del self._refs[block]
            if block in self._hash_of:
                self._evictable[block] = None
            else:
                heapq.heappush(self._free, block)

    def reset(self) -> None:
        """Forget everything (after a failed step left the pool in an unknown state)."""
        self._refs.clear()
        self._hash_of.clear()
        self._free.clear()
        self._fresh = 0
        self._cached.clear()
        self._evictable.clear()
        self._promised = 0
        self.tables.clear()

    # --- internals ---

    def _ref(self, block: int) -> None:
        if block not in self._refs:
            self._evictable.pop(block, None)
        self._refs[block] = self._refs.get(block, 0) + 1

    def _take(self) -> int:
        if self._free:
            block = heapq.heappop(self._free)
        elif self._fresh < self.num_blocks:
            block, self._fresh = self._fresh, self._fresh + 1
        elif self._evictable:
            block, _ = self._evictable.popitem(last=False)
            del self._cached[self._hash_of.pop(block)]
        else:
            raise RuntimeError("the KV cache is out of blocks (admission let too much in)")
        self._refs[block] = 1
        return block
