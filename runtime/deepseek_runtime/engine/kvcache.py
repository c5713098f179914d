"""A batched, left-padded KV cache: decode steps write in place; rows join and leave by copy.

transformers' DynamicLayer appends with torch.cat, which copies the whole cache every decode
step; on a long reasoning trace that copy costs as much as the attention itself. GrowingLayer
keeps spare capacity and writes each decode step's token in place; `keys`/`values` are views of
the filled part, so attention code sees an ordinary [batch, heads, length, dim] tensor. A row
joining or leaving (and running out of capacity) still reallocates the buffers and copies the
whole cache. DeepseekV3 (MLA) stores its compressed latent and rope key through the same
interface, as one "head".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

HEADROOM = 64  # spare tokens allocated past what is needed (at least; growth is 1.5x)


class GrowingLayer(DynamicLayer):
    _layer_type = None  # never register in (and so replace) transformers' own layer mapping

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
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
        capacity += max(HEADROOM, capacity // 2)
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


def new_cache() -> DynamicCache:
    """An empty cache whose layers (created lazily, one per model layer) are GrowingLayers."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


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
