"""A batched, left-padded KV cache: decode steps write in place; rows join and leave by copy.

transformers' DynamicLayer appends with torch.cat, which copies the whole cache every decode
step; on a long reasoning trace that copy costs as much as the attention itself. GrowingLayer
keeps spare capacity and writes each decode step's token in place; `keys`/`values` are views of
the filled part, so attention code sees an ordinary [batch, heads, length, dim] tensor. A row
joining or leaving (and running out of capacity) still reallocates the buffers and copies the
whole cache. DeepseekV3 (MLA) stores its compressed latent and rope key through the same
interface, as one "head".

Growth stops at a `LengthLimit` the runner keeps at the longest reservation among its rows
(prompt + max_tokens): no row ever needs more, so the cache costs at most rows x that limit,
which is what the scheduler admits against --kv-cache-tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

HEADROOM = 64  # spare tokens allocated past what is needed (at least; growth is 1.5x)


@dataclass(slots=True)
class LengthLimit:
    """The most tokens any row may come to hold; 0 means no limit. Shared by all the layers
    of the runner's caches, so the runner sets it once per step."""

    tokens: int = 0


class GrowingLayer(DynamicLayer):
    _layer_type = None  # never register in (and so replace) transformers' own layer mapping

    def __init__(self, limit: LengthLimit | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.limit = limit or LengthLimit()
        self._length = 0
        self._k_buf: torch.Tensor | None = None
        self._v_buf: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def get_seq_length(self) -> int:
        return self._length

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if self._k_buf is None or self._v_buf is None:
            self.assign([key_states[..., :0, :]], [value_states[..., :0, :]], 0, needed=end)
        elif end > self._k_buf.shape[-2]:
            self.assign(*filled(self), self._length, needed=end)
        assert self._k_buf is not None and self._v_buf is not None
        self._k_buf[..., self._length : end, :] = key_states
        self._v_buf[..., self._length : end, :] = value_states
        self._set_length(end)
        return self.keys, self.values  # type: ignore[return-value]

    def assign(
        self,
        keys: Sequence[torch.Tensor],
        values: Sequence[torch.Tensor],
        length: int,
        needed: int = 0,
    ) -> None:
        """Stack `keys`/`values` parts along the batch, each right-aligned (left-padded with
        zeros, which the attention mask hides) to `length`, into fresh buffers with room."""
        capacity = max(length, needed)
        grown = capacity + max(HEADROOM, capacity // 2)
        capacity = min(grown, max(self.limit.tokens, capacity)) if self.limit.tokens else grown
        rows = sum(k.shape[0] for k in keys)
        k0, v0 = keys[0], values[0]
        self._k_buf = k0.new_zeros((rows, k0.shape[1], capacity, k0.shape[-1]))
        self._v_buf = v0.new_zeros((rows, v0.shape[1], capacity, v0.shape[-1]))
        row = 0
        for k, v in zip(keys, values, strict=True):
            n, start = k.shape[0], length - k.shape[-2]
            self._k_buf[row : row + n, :, start:length] = k
            self._v_buf[row : row + n, :, start:length] = v
            row += n
        self._set_length(length)

    def _set_length(self, length: int) -> None:
        assert self._k_buf is not None and self._v_buf is not None
        self._length = length
        self.keys = self._k_buf[..., :length, :]
        self.values = self._v_buf[..., :length, :]


def new_cache(limit: LengthLimit | None = None) -> DynamicCache:
    """An empty cache whose layers (created lazily, one per model layer) are GrowingLayers."""
    cache = DynamicCache()
    # transformers only calls it, with no arguments, to make each new layer.
    cache.layer_class_to_replicate = functools.partial(GrowingLayer, limit)  # type: ignore[assignment]
    return cache


def allocated(cache: DynamicCache) -> tuple[int, int]:
    """(token slots, bytes) the cache's buffers hold: rows x capacity per layer, and the bytes
    of every layer's key and value buffers."""
    slots, nbytes = 0, 0
    for layer in layers(cache):
        for buf in (layer._k_buf, layer._v_buf):
            if buf is not None:
                nbytes += buf.numel() * buf.element_size()
        if layer._k_buf is not None:
            slots = max(slots, layer._k_buf.shape[0] * layer._k_buf.shape[-2])
    return slots, nbytes


def filled(layer: GrowingLayer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if layer.keys is None or layer.values is None:
        raise RuntimeError("a cache layer was never filled by a forward pass")
    return [layer.keys], [layer.values]


def layers(cache: DynamicCache) -> list[GrowingLayer]:
    found = list(cache.layers)
    if not all(isinstance(layer, GrowingLayer) for layer in found):
        raise TypeError("the runner's cache must hold GrowingLayers only")
    return found  # type: ignore[return-value]


def keep_rows(cache: DynamicCache, rows: torch.Tensor, start: int) -> None:
    """Keep the batch rows `rows` and drop the first `start` (all-padding) columns."""
    for layer in layers(cache):
        (keys,), (values,) = filled(layer)
        layer.assign([keys[rows, :, start:]], [values[rows, :, start:]], keys.shape[-2] - start)


def concat(cache: DynamicCache, other: DynamicCache, length: int) -> None:
    """Append `other`'s rows below `cache`'s, both left-padded to `length`."""
    for mine, theirs in zip(layers(cache), layers(other), strict=True):
        (k1,), (v1,) = filled(mine)
        (k2,), (v2,) = filled(theirs)
        mine.assign([k1, k2], [v1, v2], length)
