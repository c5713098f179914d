"""The GGUF's own blocks as the compact model's weights: `--quantization gguf` on CPU.

transformers dequantizes a GGUF to fp32 on load: the bundled SmolLM2 (93 MiB of Q4_1 blocks
and a Q8_0 embedding) becomes 513 MiB, all read once per decode step, while llama.cpp reads
the blocks themselves. This mode keeps them: each linear of the compact model (compact.py)
whose GGUF tensors are Q4_0, Q4_1 or Q8_0 computes from their 32-weight blocks with the AVX2
kernels of gguf_blocks.c (gguf_kernel.py); any other tensor type stays as loaded.

The weights are exactly the file's (each block is checked at load against the fp32 weights
transformers made of it, which also checks the row order of q and k, which GGUF permutes for
llama.cpp's rotary layout), but the sums run in another order than MKL's, so results are not
bit-for-bit those of fp32: a mode of its own, as int8 is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepseek_runtime.model import gguf_kernel
from deepseek_runtime.model.compact import CompactCausalLM

BLOCK = 32  # weights per block in Q4_0, Q4_1 and Q8_0
# From this many rows (a prefill), dequantize the weight and run torch's float GEMM: the integer
# kernel pays a block scale per row and block. On SmolLM2's four layer shapes, one thread, the
# two took the same time at 32-40 rows and dequantize + GEMM was 2.8x faster at 256; decode
# batches (at most max_num_seqs rows, 16 in the benchmarks) stay on the blocks, where reading
# 4-bit weights pays.
DENSE_ROWS = 48
KINDS = ("Q4_0", "Q4_1", "Q8_0")


@dataclass
class Blocks:
    """One weight [N, K] in blocks: q4 (qs [N, K/32, 16] uint8, w = d q + m) or q8 (qs
    [N, K/32, 32] int8, w = d q, m None)."""

    kind: str  # "q4" or "q8"
    qs: torch.Tensor
    d: torch.Tensor
    m: torch.Tensor | None

    def rows(self, order: torch.Tensor) -> Blocks:
        return Blocks(self.kind, self.qs[order], self.d[order],
                      None if self.m is None else self.m[order])  # fmt: skip

    def dequantized(self) -> torch.Tensor:
        """The fp32 weight, computed as gguf's own dequantization does (for the load check)."""
        n, groups = self.d.shape
        if self.kind == "q8":
            q = self.qs.float()
        else:
            q = torch.cat([self.qs & 0x0F, self.qs >> 4], dim=-1).float()
        if self.m is None:  # q8, and q4 from Q4_0 (centred at 8)
            w = self.d.unsqueeze(-1) * (q if self.kind == "q8" else q - 8)
        else:
            w = self.d.unsqueeze(-1) * q + self.m.unsqueeze(-1)
        return w.reshape(n, groups * BLOCK)


def read_blocks(tensor: Any) -> Blocks | None:
    """A GGUFReader tensor's blocks, or None for a type this mode does not keep."""
    kind = tensor.tensor_type.name
    if kind not in KINDS:
        return None
    data = np.asarray(tensor.data)
    n = int(data.shape[0])
    size = {"Q4_0": 18, "Q4_1": 20, "Q8_0": 34}[kind]
    blocks = data.reshape(n, -1, size)

    def half(start: int) -> torch.Tensor:
        raw = np.ascontiguousarray(blocks[..., start : start + 2]).view(np.float16)
        return torch.from_numpy(raw.reshape(n, -1).astype(np.float32))

    if kind == "Q8_0":
        return Blocks("q8", torch.from_numpy(blocks[..., 2:].copy().view(np.int8)), half(0), None)
    if kind == "Q4_0":
        return Blocks("q4", torch.from_numpy(blocks[..., 2:].copy()), half(0), None)
    return Blocks("q4", torch.from_numpy(blocks[..., 4:].copy()), half(0), half(2))


class BlockLinear(nn.Module):
    """y = x W^T with W in a GGUF's blocks (gguf_blocks.c); fp32 activations."""

    def __init__(self, blocks: Blocks) -> None:
        super().__init__()
        self.kind = blocks.kind
        self.qs = blocks.qs.contiguous()
        self.d = blocks.d.contiguous()
        # Q4_0's w = d (q - 8) runs as the Q4_1 kernel's d q + m with m = -8 d.
        self.m = None if blocks.kind == "q8" else (
            blocks.m if blocks.m is not None else -8 * blocks.d).contiguous()  # fmt: skip
        self.out_features = int(self.qs.shape[0])
        self.in_features = int(self.d.shape[1]) * BLOCK
        self.blocks = gguf_kernel.weight(self.qs, self.d, self.m)  # pointers into the above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float().contiguous()
        if flat.shape[0] >= DENSE_ROWS:
            out = torch.nn.functional.linear(flat, gguf_kernel.dequantized(self.blocks))
        else:
            out = gguf_kernel.linear(self.blocks, flat)
        return out.view(*x.shape[:-1], self.out_features).to(x.dtype)


def _rotary_order(rows: int, heads: int) -> torch.Tensor:
    """Row i of transformers' q/k weight is row order[i] of the GGUF's (llama.cpp permutes the
    rows of each head for its rotary layout; transformers undoes it)."""
    return torch.arange(rows).view(heads, rows // heads // 2, 2).transpose(1, 2).reshape(rows)


def _joined(parts: list[Blocks | None]) -> Blocks | None:
    """One Blocks of the parts' rows side by side (a fused linear), if they share a type."""
    kept = [p for p in parts if p is not None]
    if len(kept) != len(parts) or len({(p.kind, p.m is None, p.d.shape[1]) for p in kept}) != 1:
        return None  # a part this mode does not keep, or mixed types: the fp32 linear stays
    ms = [p.m for p in kept]
    return Blocks(
        kept[0].kind,
        torch.cat([p.qs for p in kept]),
        torch.cat([p.d for p in kept]),
        None if any(m is None for m in ms) else torch.cat([m for m in ms if m is not None]),
    )


def _check(blocks: Blocks, weight: torch.Tensor, where: str) -> None:
    if not torch.equal(blocks.dequantized(), weight.detach().float()):
        raise ValueError(
            f"{where}: the GGUF blocks do not dequantize to the weights transformers loaded "
            "(an unexpected tensor layout); use --quantization none for this model"
        )


def use_gguf_blocks(model: CompactCausalLM, gguf_path: Path) -> CompactCausalLM:
    """Swap the compact model's linears for BlockLinears where the GGUF holds blocks.

    Raises gguf_kernel.KernelUnavailableError where the kernels cannot run here."""
    from gguf import GGUFReader

    gguf_kernel.library()  # fail at start-up, not on the first request
    tensors = {t.name: read_blocks(t) for t in GGUFReader(gguf_path).tensors}
    config = model.config
    heads, kv_heads = int(config.num_attention_heads), int(config.num_key_value_heads)

    def permuted(blocks: Blocks | None, n_heads: int) -> Blocks | None:
        return None if blocks is None else blocks.rows(_rotary_order(blocks.d.shape[0], n_heads))

    def swap(fused: nn.Module, parts: list[Blocks | None], where: str) -> nn.Module:
        blocks = _joined(parts)
        if blocks is None:
            return fused  # a type this mode does not keep: the fp32 linear stays
        _check(blocks, fused.weight, where)  # type: ignore[arg-type]
        return BlockLinear(blocks)

    for i, layer in enumerate(model.decoder_layers()):
        get = lambda name, i=i: tensors.get(f"blk.{i}.{name}.weight")  # noqa: E731
        qkv = [permuted(get("attn_q"), heads), permuted(get("attn_k"), kv_heads), get("attn_v")]
        layer.qkv = swap(layer.qkv, qkv, f"layer {i} q/k/v")
        layer.o_proj = swap(layer.o_proj, [get("attn_output")], f"layer {i} o_proj")
        layer.gate_up = swap(layer.gate_up, [get("ffn_gate"), get("ffn_up")], f"layer {i} mlp")
        layer.down = swap(layer.down, [get("ffn_down")], f"layer {i} down_proj")
    head = tensors.get("output.weight", tensors.get("token_embd.weight"))
    if getattr(model.lm_head, "bias", None) is None:
        model.lm_head = swap(model.lm_head, [head], "lm_head")
    return model
