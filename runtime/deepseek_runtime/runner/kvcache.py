"""A paged KV cache on transformers' Cache interface: one pool of token slots per layer,
addressed through each sequence's block table (blocks.py owns the blocks).

The model's attention calls `cache.update(keys, values, layer)` with this step's new keys and
values, [items, heads, query length, dim]; the layer writes them into their slots and returns
every item's whole context, gathered from its blocks into [items, heads, context, dim], for the
attention to read. The slot indices are computed once per step (`StepLayout`, shared by all the
layers), so a layer costs one scatter and one gather. DeepseekV3 (MLA) passes its compressed
latent and rope key through the same call as one "head" each, of different widths: keys and
values have pools of their own shapes.

Decode steps avoid that gather while the batch stays the same: the first decode step of a
batch gathers every item's context once into a contiguous working view [items, heads, room,
dim], with room to grow; the following steps write each new token into the pool and into its
column of the view, and attention reads the view in place (what the left-padded cache did,
without its copies on every join and leave). A batch that changes, or outgrows the room, is
gathered again. The view is a copy of the running sequences' contexts (at most rows x the
longest context + headroom, on top of the pools); prefill steps do not use it.

Slot 0 is scratch: padding queries write there and padding columns read it (the attention mask
hides them). Block b's token i lives in slot 1 + b * block_size + i. The pools grow (by copy,
rarely) to the highest block in use, never past the budget, so memory follows what is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from deepseek_runtime.engine.step import StepInput

SCRATCH = 0
GROWTH = 1.5
VIEW_HEADROOM = 64  # tokens of room a decode view gets past the longest context (at least)


@dataclass(slots=True)
class StepLayout:
    """Where this step's tokens go and where each item's context is read from."""

    write: torch.Tensor  # [items * query length] slot of each new token (padding: scratch)
    read: torch.Tensor  # [items * context] slot of each context token (padding: scratch)
    items: int
    context: int  # the longest item's context: the key length attention sees
    slots_needed: int  # pool rows this step touches (1 + highest slot)
    view: str = "none"  # decode view: "none" (gather), "fill" (gather into it), "append"
    room: int = 0  # the view's length in tokens ("fill")
    columns: torch.Tensor | None = None  # [items] each new token's column in the view


class DecodeView:
    """Decides, once per step for every layer, whether the decode view can be appended to."""

    def __init__(self) -> None:
        self._ids: tuple[int, ...] = ()
        self._contexts: tuple[int, ...] = ()
        self._room = 0

    def plan(self, step: StepInput, where: StepLayout, device: torch.device) -> None:
        items = step.items
        if any(len(item.token_ids) != 1 for item in items):
            self._ids = ()  # a prefill step: the next decode step gathers afresh
            return
        ids = tuple(item.seq_id for item in items)
        contexts = tuple(item.context_len for item in items)
        grown_by_one = all(c == p + 1 for c, p in zip(contexts, self._contexts, strict=False))
        if ids == self._ids and grown_by_one and max(contexts) <= self._room:
            where.view = "append"
            where.columns = torch.tensor([item.start for item in items], device=device)
        else:
            where.view = "fill"
            self._room = max(contexts) + max(VIEW_HEADROOM, max(contexts) // 4)
        where.room = self._room
        self._ids, self._contexts = ids, contexts

    def reset(self) -> None:
        self._ids = ()


def slot_of(block_table: torch.Tensor, positions: torch.Tensor, block_size: int) -> torch.Tensor:
    """Slots of `positions` ([items, n], -1 = padding) through `block_table` ([items, blocks])."""
    clamped = positions.clamp(min=0)
    blocks = block_table.gather(1, (clamped // block_size).clamp(max=block_table.shape[1] - 1))
    slots = 1 + blocks * block_size + clamped % block_size
    return torch.where(positions >= 0, slots, SCRATCH)


def layout(step: StepInput, query_len: int, device: torch.device) -> StepLayout:
    """Slot indices for a step whose queries are left-padded to `query_len`."""
    items = step.items
    context = max(item.context_len for item in items)
    width = max(len(item.block_table) for item in items)
    tables = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        tables[row, : len(item.block_table)] = torch.tensor(item.block_table, dtype=torch.long)
    starts = torch.tensor([i.start for i in items]).unsqueeze(1)
    lengths = torch.tensor([len(i.token_ids) for i in items]).unsqueeze(1)
    columns = torch.arange(query_len).unsqueeze(0)
    offset = columns - (query_len - lengths)  # index into each item's new tokens
    write_pos = torch.where(offset >= 0, starts + offset, -1)
    ctx = torch.arange(context).unsqueeze(0)
    read_pos = torch.where(ctx < starts + lengths, ctx, -1)
    write = slot_of(tables, write_pos, step.block_size)
    read = slot_of(tables, read_pos, step.block_size)
    needed = 1 + (int(tables.max()) + 1) * step.block_size
    return StepLayout(
        write.flatten().to(device), read.flatten().to(device), len(items), context, needed
    )


@dataclass(slots=True)
class PoolShape:
    """What every layer's pool may hold at most, and what this step needs."""

    max_slots: int  # 1 + num_blocks * block_size
    step: StepLayout | None = None


class PagedLayer(CacheLayerMixin):
    _layer_type = None  # never register in (and so replace) transformers' own layer mapping

    def __init__(self, shape: PoolShape) -> None:
        super().__init__()
        self.shape = shape
        self.k_pool: torch.Tensor | None = None  # [slots, heads, dim]
        self.v_pool: torch.Tensor | None = None
        self.k_view: torch.Tensor | None = None  # [items, heads, room, dim] (decode only)
        self.v_view: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def get_seq_length(self) -> int:
        return 0  # positions are always passed explicitly; nothing reads this

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        step = self.shape.step
        return (step.context if step is not None else query_length), 0

    def get_max_length(self) -> int:
        return -1

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        step = self.shape.step
        if step is None:
            raise RuntimeError("the paged cache was used outside ModelRunner.forward_step")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.k_pool = self._fit(self.k_pool, key_states, step.slots_needed)
        self.v_pool = self._fit(self.v_pool, value_states, step.slots_needed)
        if step.view == "append" and self.k_view is not None and self.v_view is not None:
            keys = self._append(self.k_pool, self.k_view, key_states, step)
            values = self._append(self.v_pool, self.v_view, value_states, step)
            return keys, values
        keys = self._write_read(self.k_pool, key_states, step)
        values = self._write_read(self.v_pool, value_states, step)
        if step.view == "fill":
            self.k_view, keys = _fill(keys, step)
            self.v_view, values = _fill(values, step)
        else:
            self.k_view = self.v_view = None
        return keys, values

    @staticmethod
    def _write_read(pool: torch.Tensor, new: torch.Tensor, step: StepLayout) -> torch.Tensor:
        items, heads, length, dim = new.shape
        pool.index_copy_(0, step.write, new.transpose(1, 2).reshape(items * length, heads, dim))
        gathered = pool.index_select(0, step.read).view(items, step.context, heads, dim)
        return gathered.transpose(1, 2)

    @staticmethod
    def _append(
        pool: torch.Tensor, view: torch.Tensor, new: torch.Tensor, step: StepLayout
    ) -> torch.Tensor:
        """One new token per item: into its slot, and into its column of the view."""
        items = new.shape[0]
        token = new[:, :, 0, :]  # [items, heads, dim]
        pool.index_copy_(0, step.write, token)
        rows = torch.arange(items, device=new.device)
        view[rows, :, step.columns, :] = token
        return view[:, :, : step.context, :]

    def _fit(self, pool: torch.Tensor | None, like: torch.Tensor, needed: int) -> torch.Tensor:
        if pool is not None and pool.shape[0] >= needed:
            return pool
        have = 0 if pool is None else pool.shape[0]
        rows = min(self.shape.max_slots, max(needed, int(have * GROWTH)))
        grown = like.new_zeros((rows, like.shape[1], like.shape[-1]))
        if pool is not None:
            grown[:have] = pool
        return grown

    def nbytes(self) -> int:
        return sum(
            p.numel() * p.element_size() for p in (self.k_pool, self.v_pool) if p is not None
        )

    def slots(self) -> int:
        return 0 if self.k_pool is None else self.k_pool.shape[0] - 1


def _fill(gathered: torch.Tensor, step: StepLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh view holding `gathered` ([items, heads, context, dim]) with room to grow."""
    items, heads, context, dim = gathered.shape
    # Zeros, not empty: a shorter item's columns past its context are read (masked) as the
    # batch's longest context grows, and uninitialised memory may hold NaN, which no mask hides.
    view = gathered.new_zeros((items, heads, step.room, dim))
    view[:, :, :context] = gathered
    return view, view[:, :, :context, :]


class PagedCache(Cache):
    """The runner's one cache, alive as long as the engine; layers are created on first use."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.shape = PoolShape(1 + num_blocks * block_size)
        self.view = DecodeView()
        super().__init__(layer_class_to_replicate=functools.partial(PagedLayer, self.shape))  # type: ignore[arg-type]

    def paged_layers(self) -> list[PagedLayer]:
        return [layer for layer in self.layers if isinstance(layer, PagedLayer)]

    def view_bytes(self) -> int:
        """Bytes of the decode views (working copies of the running contexts)."""
        return sum(
            v.numel() * v.element_size()
            for layer in self.paged_layers()
            for v in (layer.k_view, layer.v_view)
            if v is not None
        )

    def allocated(self) -> tuple[int, int]:
        """(token slots, bytes) the pools hold now (the scratch slot not counted in slots)."""
        found = self.paged_layers()
        return max((layer.slots() for layer in found), default=0), sum(
            layer.nbytes() for layer in found
        )
