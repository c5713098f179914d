"""A compact Llama layer whose linears all run from GGUF blocks, as four kernel calls.

Profiled at one row (a single client's decode step, the embedded default on this 2-core CPU),
the block matmuls took about half of a step: the other half was ~40 small torch ops per layer
(two RMSNorms of six ops each, the rotary embedding's slices and concatenations, the SiLU and
product, the residual adds, one fresh activation buffer per linear), each costing microseconds
of dispatch for a few hundred floats of work. Here a layer is: RMSNorm + q/k/v projection (one
call), rotary embedding in place (one call), the paged cache and sdpa attention exactly as in
compact.py, o_proj added into the residual (one call), and the whole MLP with its norm and
residual (one call). The residual stream is updated in place. A prefill of DENSE_ROWS rows
or more runs the layer op by op instead, on float GEMMs of the dequantized blocks
(gguf_weights.py): there the matmuls dominate and the per-op cost does not matter.

Same weights and the same int8 activation rounding as BlockLinear; only the float order of the
norms and the SiLU differs, so results match the unfused gguf layer to float rounding (tested),
and this is part of `--quantization gguf`, not a mode of its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepseek_runtime.model import gguf_kernel, gguf_weights
from deepseek_runtime.model.compact import CompactCausalLM, CompactLayer
from deepseek_runtime.model.gguf_weights import BlockLinear


class BlockLayer(nn.Module):
    """Runs `layer` (a CompactLayer whose q/k/v, o_proj, gate_up and down are BlockLinears)."""

    def __init__(self, layer: CompactLayer) -> None:
        super().__init__()
        self.layer = layer
        self.qkv, self.o_proj = self._blocks(layer.qkv), self._blocks(layer.o_proj)
        self.gate_up, self.down = self._blocks(layer.gate_up), self._blocks(layer.down)
        self.rotated_heads = layer.num_heads + layer.num_kv_heads  # q's and k's, not v's

    @staticmethod
    def _blocks(linear: nn.Module) -> gguf_kernel.Weight:
        if not isinstance(linear, BlockLinear):
            raise TypeError(f"a BlockLayer needs block linears, not {type(linear).__name__}")
        return linear.blocks

    @classmethod
    def fits(cls, layer: CompactLayer) -> bool:
        """True when every linear of `layer` runs from blocks (else it stays a CompactLayer)."""
        linears = (layer.qkv, layer.o_proj, layer.gate_up, layer.down)
        return all(isinstance(linear, BlockLinear) for linear in linears)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Any,
    ) -> torch.Tensor:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        layer = self.layer
        batch, length, _ = x.shape
        if batch * length >= gguf_weights.DENSE_ROWS:  # a prefill: GEMMs on dequantized weights
            return layer(x, rope, mask, cache)
        x = x.float().contiguous()  # updated in place below: the residual stream
        qkv = gguf_kernel.norm_linear(self.qkv, x, layer.input_norm, layer.eps)
        gguf_kernel.rope(qkv, *rope, heads=self.rotated_heads)
        q, k, v = qkv.split(layer.split, dim=-1)
        q = q.view(batch, length, -1, layer.head_dim).transpose(1, 2)
        k = k.view(batch, length, -1, layer.head_dim).transpose(1, 2)
        v = v.view(batch, length, -1, layer.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v, layer.layer_idx)
        attn, _ = sdpa_attention_forward(layer, q, k, v, mask, scaling=layer.scaling)
        gguf_kernel.linear(self.o_proj, attn.reshape(batch, length, -1).contiguous(), out=x)
        gguf_kernel.mlp(self.gate_up, self.down, x, layer.post_norm, layer.eps)
        return x


def fuse_layers(model: CompactCausalLM) -> CompactCausalLM:
    """Run each layer whose linears all come from blocks as a BlockLayer (in place)."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, CompactLayer) and BlockLayer.fits(layer):
            model.layers[i] = BlockLayer(layer)
    return model
