"""model/gguf_layer.py: a layer of block linears run as fused kernel calls computes what the
same layer computes op by op (compact.py's forward over BlockLinears), to float rounding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from gguf import GGMLQuantizationType, quants
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from deepseek_runtime.model import gguf_kernel
from deepseek_runtime.model.compact import CompactCausalLM, CompactLayer, compact_model
from deepseek_runtime.model.gguf_layer import BlockLayer, fuse_layers
from deepseek_runtime.model.gguf_weights import BlockLinear, read_blocks

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 16


def block_linear(linear: torch.nn.Module, kind: str) -> BlockLinear:
    """`linear`'s weight quantized to GGUF blocks of `kind`, as a BlockLinear."""
    kind_enum = GGMLQuantizationType[kind]
    data = quants.quantize(linear.weight.detach().numpy(), kind_enum)
    blocks = read_blocks(SimpleNamespace(tensor_type=kind_enum, data=data))
    assert blocks is not None
    return BlockLinear(blocks)


def models() -> tuple[CompactCausalLM, CompactCausalLM]:
    """A tiny Llama as the compact model twice: in fp32, and with GGUF block linears (each
    layer of another kind: Q4_1, Q8_0, Q4_0)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=HEADS * HEAD_DIM, intermediate_size=160,
                         num_hidden_layers=3, num_attention_heads=HEADS,
                         num_key_value_heads=KV_HEADS, max_position_embeddings=128,
                         attn_implementation="sdpa")  # fmt: skip
    hf = LlamaForCausalLM(config).eval()
    fp32, compact = compact_model(hf), compact_model(hf)
    assert fp32 is not None and compact is not None
    for layer, kind in zip(compact.decoder_layers(), ("Q4_1", "Q8_0", "Q4_0"), strict=True):
        layer.qkv, layer.o_proj = block_linear(layer.qkv, kind), block_linear(layer.o_proj, kind)
        layer.gate_up = block_linear(layer.gate_up, kind)
        layer.down = block_linear(layer.down, "Q8_0")
    return fp32, compact


@pytest.fixture
def model() -> CompactCausalLM:
    return models()[1]


def close(got: torch.Tensor, want: torch.Tensor) -> bool:
    # The activations' int8 rounding can flip by one step where float order differs: tiny.
    return bool((got - want).abs().max() <= 2e-3 * want.abs().max())


@pytest.mark.parametrize("rows", [1, 5])
def test_rope_in_place_is_transformers_rotary_embedding(rows: int) -> None:
    qkv = torch.randn(rows, (HEADS + 2 * KV_HEADS) * HEAD_DIM)
    angles = torch.randn(rows, HEAD_DIM // 2).repeat(1, 2)
    cos, sin = angles.cos(), angles.sin()
    sizes = [HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM]

    def by_head(t: torch.Tensor) -> torch.Tensor:  # [rows, heads * dim] -> [1, heads, rows, dim]
        return t.reshape(rows, -1, HEAD_DIM).transpose(0, 1).unsqueeze(0)

    q, k, v = qkv.split(sizes, dim=-1)
    want_q, want_k = apply_rotary_pos_emb(by_head(q), by_head(k), cos[None], sin[None])
    want_v = v.clone()
    got = qkv.clone()
    gguf_kernel.rope(got, cos, sin, heads=HEADS + KV_HEADS)
    got_q, got_k, got_v = got.split(sizes, dim=-1)
    assert torch.allclose(by_head(got_q), want_q, atol=1e-6)
    assert torch.allclose(by_head(got_k), want_k, atol=1e-6)
    assert torch.equal(got_v, want_v)  # v is never rotated


@pytest.mark.parametrize("length", [1, 7])
def test_fused_layer_computes_what_the_op_by_op_layer_does(
    model: CompactCausalLM, length: int
) -> None:
    x = torch.randn(3, length, HEADS * HEAD_DIM)
    positions = torch.arange(length).expand(3, length)
    rope = model.rotary_emb(x, position_ids=positions)
    for layer in model.decoder_layers():
        want = layer(x.clone(), rope, None, None)
        got = BlockLayer(layer)(x.clone(), rope, None, None)
        assert got.shape == want.shape and close(got, want)


def test_the_residual_stream_is_updated_in_place(model: CompactCausalLM) -> None:
    x = torch.randn(2, 1, HEADS * HEAD_DIM)
    rope = model.rotary_emb(x, position_ids=torch.zeros(2, 1, dtype=torch.long))
    out = BlockLayer(model.decoder_layers()[0])(x, rope, None, None)
    assert out.data_ptr() == x.data_ptr()


def test_fused_model_is_as_close_to_fp32_as_the_op_by_op_one() -> None:
    """Across layers the two drift apart (a tiny float difference can flip an activation's
    int8 rounding, one step of ~1% of its block's peak, in the next layer), so whole-model
    equality is not the property: both must be as far from the fp32 model, which a wrong
    rotary, norm or residual in the fused path would not be."""
    fp32, model = models()
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = fp32(ids, cache=DynamicCache(config=fp32.config)).logits
        op_by_op = model(ids, cache=DynamicCache(config=model.config)).logits
        fused = fuse_layers(model)
        assert all(isinstance(layer, BlockLayer) for layer in fused.layers)
        assert len(fused.decoder_layers()) == 3  # still found through the wrappers
        got = fused(ids, cache=DynamicCache(config=model.config)).logits
    assert (got - want).abs().max() <= 1.25 * (op_by_op - want).abs().max()


def test_a_layer_with_a_float_linear_is_not_fused() -> None:
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                         attn_implementation="sdpa")  # fmt: skip
    compact = compact_model(LlamaForCausalLM(config).eval())
    assert compact is not None
    layer = compact.decoder_layers()[0]
    layer.qkv = block_linear(layer.qkv, "Q8_0")  # o_proj, gate_up and down stay fp32
    assert isinstance(fuse_layers(compact).layers[0], CompactLayer)
    with pytest.raises(TypeError, match="block linears"):
        BlockLayer(layer)
