"""A compact CPU forward for Llama-family models (SmolLM2, the embedded default, is one).

Profiled on the bundled SmolLM2-135M (30 layers, hidden 576) at batch 1 on this 2-core box,
transformers' LlamaForCausalLM spends ~56% of a decode step in its 211 linear calls and the
rest in per-module Python and framework overhead (hooks, kwargs plumbing, seven small linears
per layer). This model computes the same thing with fewer, larger steps:

- q/k/v are one linear, gate/up are one linear (the same dot products per output, so fp32
  results stay bit-for-bit those of the separate projections on MKL; the tests check greedy
  token identity with `generate`);
- one flat loop over plain layers, no hooks, no output records;
- transformers' own rotary embedding, causal-mask builder and sdpa attention function, and
  the Cache.update API, so it runs unchanged on the engine's paged KV cache (runner/) and
  its explicit 4-D masks, and also on None / 2-D masks.

`--quantization int8` on CPU swaps its linears for int8 ones (compact_weights.py): faster,
not exact, reported as its own mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Model types whose decoder layer is exactly Llama's (pre-norm, rope, GQA, gated SiLU MLP).
LLAMA_FAMILY = ("llama",)


@dataclass
class CompactOutput:
    logits: torch.Tensor


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm's arithmetic, in the same order (for identical float results)."""
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


class FloatLinear(nn.Module):
    """y = x W^T (+ b), the weight kept as loaded."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _fused(*linears: nn.Linear) -> FloatLinear:
    """One linear computing `linears` side by side. Their weights become row views of the
    fused one, so the transformers model (kept for `generate`) and this share the memory."""
    fused = FloatLinear(torch.cat([lin.weight.detach() for lin in linears], dim=0))
    if all(lin.bias is not None for lin in linears):
        fused.bias = nn.Parameter(torch.cat([lin.bias.detach() for lin in linears]), False)
    row = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        lin.weight = nn.Parameter(fused.weight[row : row + rows], requires_grad=False)
        if fused.bias is not None:
            lin.bias = nn.Parameter(fused.bias[row : row + rows], requires_grad=False)
        row += rows
    return fused


class CompactLayer(nn.Module):
    """One Llama decoder layer with fused qkv and gate_up projections."""

    def __init__(self, hf_layer: Any, layer_idx: int, config: Any) -> None:
        super().__init__()
        attn, mlp = hf_layer.self_attn, hf_layer.mlp
        self.layer_idx = layer_idx
        self.head_dim = int(attn.head_dim)
        self.num_heads = int(config.num_attention_heads)
        self.num_kv_heads = int(config.num_key_value_heads)
        self.num_key_value_groups = self.num_heads // self.num_kv_heads  # read by sdpa_attention
        self.is_causal = True
        self.scaling = float(attn.scaling)
        self.eps = float(hf_layer.input_layernorm.variance_epsilon)
        self.input_norm = nn.Parameter(hf_layer.input_layernorm.weight.detach(), False)
        self.post_norm = nn.Parameter(hf_layer.post_attention_layernorm.weight.detach(), False)
        self.qkv: nn.Module = _fused(attn.q_proj, attn.k_proj, attn.v_proj)
        self.o_proj: nn.Module = FloatLinear(attn.o_proj.weight, attn.o_proj.bias)
        self.gate_up: nn.Module = _fused(mlp.gate_proj, mlp.up_proj)
        self.down: nn.Module = FloatLinear(mlp.down_proj.weight, mlp.down_proj.bias)
        self.split = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim,
                      self.num_kv_heads * self.head_dim)  # fmt: skip

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Any,
    ) -> torch.Tensor:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        batch, length, _ = x.shape
        q, k, v = self.qkv(rms_norm(x, self.input_norm, self.eps)).split(self.split, dim=-1)
        q = q.view(batch, length, -1, self.head_dim).transpose(1, 2)
        k = k.view(batch, length, -1, self.head_dim).transpose(1, 2)
        v = v.view(batch, length, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rope)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        attn, _ = sdpa_attention_forward(self, q, k, v, mask, scaling=self.scaling)
        x = x + self.o_proj(attn.reshape(batch, length, -1))
        gate, up = self.gate_up(rms_norm(x, self.post_norm, self.eps)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class CompactCausalLM(nn.Module):
    """What the engine needs of a causal LM (forward with a Cache, the config, the output
    head), built from a loaded transformers Llama-family model. Shares its tensors."""

    def __init__(self, hf_model: Any) -> None:
        super().__init__()
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

        inner = hf_model.model
        self.config = hf_model.config
        self.generation_config = hf_model.generation_config
        self.embed_tokens = inner.embed_tokens
        self.layers = nn.ModuleList(
            CompactLayer(layer, i, self.config) for i, layer in enumerate(inner.layers)
        )
        self.norm = nn.Parameter(inner.norm.weight.detach(), requires_grad=False)
        self.eps = float(inner.norm.variance_epsilon)
        self.rotary_emb = inner.rotary_emb
        if not isinstance(self.rotary_emb, LlamaRotaryEmbedding):
            raise TypeError(f"unexpected rotary embedding {type(self.rotary_emb).__name__}")
        self.lm_head: nn.Module = hf_model.lm_head

    def decoder_layers(self) -> list[CompactLayer]:
        # modules(), not self.layers: a layer may run wrapped (gguf_layer.BlockLayer).
        return [module for module in self.modules() if isinstance(module, CompactLayer)]

    @property
    def device(self) -> torch.device:
        return self.norm.device

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, head: nn.Module) -> None:
        self.lm_head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        past_key_values: Any = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
        **_: Any,
    ) -> CompactOutput:
        from transformers.masking_utils import create_causal_mask

        cache = cache if cache is not None else past_key_values
        x = self.embed_tokens(input_ids)
        if position_ids is None:
            start = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(start, start + x.shape[1], device=x.device).unsqueeze(0)
        # A 4-D mask comes back as is; None / 2-D become what transformers' Llama would use.
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=x,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        rope = self.rotary_emb(x, position_ids=position_ids)
        for layer in self.layers:
            x = layer(x, rope, mask, cache if use_cache else None)
        if logits_to_keep:
            x = x[:, -logits_to_keep:, :]
        return CompactOutput(self.lm_head(rms_norm(x, self.norm, self.eps)))


def compact_model(hf_model: Any) -> CompactCausalLM | None:
    """The compact equivalent of a loaded float CPU model, or None when it has none."""
    config = hf_model.config
    if getattr(config, "model_type", None) not in LLAMA_FAMILY:
        return None
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return None
    if any(not p.is_floating_point() or p.device.type != "cpu" for p in hf_model.parameters()):
        return None
    return CompactCausalLM(hf_model).eval()
