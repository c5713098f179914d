from __future__ import annotations

import json
import re

import pytest

from deepseek_operator.catalog import GIB, MODELS, facts_from_config, find_gpu, find_model
from deepseek_operator.sizing import (
    SizingError,
    check_product,
    kv_cache_bytes,
    plan,
    weight_bytes,
)

H100 = find_gpu("NVIDIA-H100-80GB-HBM3")
A100_40 = find_gpu("NVIDIA-A100-SXM4-40GB")


def test_catalogue_covers_the_family() -> None:
    for name in [
        "DeepSeek-R1",
        "DeepSeek-V3",
        "DeepSeek-R1-Distill-Qwen-1.5B",
        "DeepSeek-R1-Distill-Qwen-7B",
        "DeepSeek-R1-Distill-Llama-8B",
        "DeepSeek-R1-Distill-Qwen-14B",
        "DeepSeek-R1-Distill-Qwen-32B",
        "DeepSeek-R1-Distill-Llama-70B",
        "DeepSeek-Coder-V2-Instruct",
        "DeepSeek-V2-Lite",
    ]:
        assert find_model(f"deepseek-ai/{name}") is not None, name
        assert find_model(name.lower()) is not None, name
    for gpu in [
        "NVIDIA-A100-SXM4-40GB",
        "NVIDIA-A100-SXM4-80GB",
        "NVIDIA-H100-80GB-HBM3",
        "NVIDIA-H200",
        "NVIDIA-L40S",
        "NVIDIA-L4",
        "NVIDIA-GeForce-RTX-4090",
    ]:
        assert find_gpu(gpu) is not None, gpu


def test_kv_per_token_uses_gqa_heads_for_distill_and_the_mla_latent_for_r1() -> None:
    qwen7b = find_model("DeepSeek-R1-Distill-Qwen-7B")
    r1 = find_model("DeepSeek-R1")
    assert qwen7b is not None and r1 is not None
    # Qwen2.5-7B: 28 layers x 2 (K,V) x 4 KV heads x 128 dims x 2 bytes = 56 KiB per token.
    assert kv_cache_bytes(qwen7b, 1, 1) == 28 * 2 * 4 * 128 * 2
    # DeepSeek-R1: 61 layers x (512 latent + 64 rope) x 2 bytes, far below per-head K/V.
    assert kv_cache_bytes(r1, 1, 1) == 61 * (512 + 64) * 2
    per_head = 61 * 2 * 128 * (128 + 64) * 2
    assert kv_cache_bytes(r1, 1, 1) * 50 < per_head


def test_r1_distill_qwen_7b_bf16_fits_one_40gb_a100() -> None:
    model = find_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    assert model is not None and A100_40 is not None
    result = plan(model, "bf16", gpu_memory_gib=A100_40.memory_gib, product=A100_40.product)
    assert result.gpus == 1 and result.tensor_parallel == 1
    assert 14 < result.weights_gib < 15  # 7.6 B params x 2 bytes
    assert result.per_gpu_gib <= A100_40.memory_gib * 0.9


@pytest.mark.parametrize(
    ("gpu", "max_nodes", "said"),
    [
        (
            "NVIDIA-H100-80GB-HBM3",
            1,
            "about 18.2 x NVIDIA-H100-80GB-HBM3, more than the 8 GPUs "
            "one node offers. What would fit: quantization fp8 on 8 x NVIDIA-H200",
        ),
        (
            "NVIDIA-L4",
            8,
            "about 69.4 x NVIDIA-L4, more than the 64 GPUs that 8 nodes of 8 offer "
            "(resources.gpu.maxNodes). What would fit: ",
        ),
    ],
    ids=["one-node", "eight-nodes"],
)
def test_r1_671b_bf16_beyond_the_nodes_allowed_says_what_would_fit(
    gpu: str, max_nodes: int, said: str
) -> None:
    model, product = find_model("deepseek-ai/DeepSeek-R1"), find_gpu(gpu)
    assert model is not None and product is not None
    with pytest.raises(SizingError, match=re.escape(said)):
        plan(model, "bf16", gpu_memory_gib=product.memory_gib, product=gpu, max_nodes=max_nodes)


def test_quantization_shrinks_weights_but_keeps_embeddings_16bit() -> None:
    model = find_model("DeepSeek-R1-Distill-Llama-70B")
    assert model is not None
    bf16, int8, int4 = (weight_bytes(model, q) for q in ("bf16", "int8", "int4"))
    assert bf16 == model.parameters * 2
    assert bf16 / 2 < int8 < bf16 / 2 * 1.05
    assert int8 / 2 < int4 < int8 / 2 * 1.15


def test_tensor_parallel_is_the_smallest_fitting_power_of_two() -> None:
    model = find_model("DeepSeek-R1-Distill-Llama-70B")
    assert model is not None and H100 is not None
    result = plan(model, "bf16", gpu_memory_gib=H100.memory_gib, product=H100.product)
    assert result.tensor_parallel == 4
    smaller = plan(
        model,
        "bf16",
        gpu_memory_gib=H100.memory_gib,
        product=H100.product,
        concurrency=1,
        max_model_len=2048,
    )
    assert smaller.tensor_parallel == 2


def test_more_context_or_concurrency_needs_more_memory() -> None:
    model = find_model("DeepSeek-R1-Distill-Qwen-14B")
    assert model is not None
    small = plan(model, "bf16", gpu_memory_gib=80, product=None, max_model_len=4096, concurrency=8)
    big = plan(model, "bf16", gpu_memory_gib=80, product=None, max_model_len=32768, concurrency=64)
    assert big.kv_cache_gib == pytest.approx(small.kv_cache_gib * 64)
    assert big.gpus > small.gpus


def test_fp8_needs_ada_or_hopper() -> None:
    r1 = find_model("DeepSeek-R1")
    assert r1 is not None and A100_40 is not None and H100 is not None
    with pytest.raises(SizingError, match="FP8"):
        check_product(A100_40, r1, "none")  # R1 ships FP8 weights
    check_product(H100, r1, "none")


def test_explicit_count_is_checked_not_chosen() -> None:
    model = find_model("DeepSeek-R1-Distill-Qwen-32B")
    assert model is not None
    assert plan(model, "bf16", gpu_memory_gib=80, product=None, count=8).gpus == 8
    with pytest.raises(SizingError, match="power of two"):
        plan(model, "bf16", gpu_memory_gib=80, product=None, count=6)


def test_facts_from_config_json_match_the_catalogue() -> None:
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    }
    facts = facts_from_config(json.loads(json.dumps(config)), "local")
    catalogue = MODELS["deepseek-ai/deepseek-r1-distill-qwen-7b"]
    assert facts.kv_elements_per_token() == catalogue.kv_elements_per_token()
    assert abs(facts.parameters - catalogue.parameters) / catalogue.parameters < 0.01
    assert facts.parameters * 2 / GIB == pytest.approx(catalogue.parameters * 2 / GIB, rel=0.01)


R1 = find_model("deepseek-ai/DeepSeek-R1")


def test_a_model_larger_than_one_node_takes_whole_nodes() -> None:
    """R1 in bf16 needs about 18.2 H100s: 3 nodes of 8 would hold it, but TP=24 does not divide
    its 128 heads, so 4 nodes (TP=32), every pod taking all 8 GPUs of its node."""
    assert R1 is not None and H100 is not None
    found = plan(R1, "bf16", gpu_memory_gib=H100.memory_gib, product=H100.product, max_nodes=8)
    assert (found.gpus_per_node, found.nodes, found.tensor_parallel) == (8, 4, 32)
    assert found.gpus == 32 and found.layout() == "8x4"
    assert found.per_gpu_gib <= H100.memory_gib * 0.9
    assert "(8 per node x 4 nodes), TP=32" in found.summary()
    status = found.status()
    assert (status.gpus_per_replica, status.gpus_per_node, status.nodes) == (32, 8, 4)


def test_one_node_is_used_whenever_it_is_enough() -> None:
    model = find_model("DeepSeek-R1-Distill-Llama-70B")
    assert model is not None and H100 is not None
    found = plan(model, "bf16", gpu_memory_gib=H100.memory_gib, product=None, max_nodes=8)
    assert (found.gpus_per_node, found.nodes) == (4, 1) and found.layout() == "4"


def test_no_group_within_max_nodes_that_divides_the_heads_is_said() -> None:
    assert R1 is not None and H100 is not None
    with pytest.raises(SizingError) as info:
        plan(R1, "bf16", gpu_memory_gib=H100.memory_gib, product=H100.product, max_nodes=3)
    assert "divides its 128 attention heads" in str(info.value)
    assert "(2 nodes)" in str(info.value)  # fp8 on 16 x H100 is among what would fit


def test_a_count_beyond_one_node_fills_whole_nodes() -> None:
    assert R1 is not None
    found = plan(R1, "fp8", gpu_memory_gib=80, product=None, count=16, max_nodes=8)
    assert (found.gpus_per_node, found.nodes) == (8, 2)
    with pytest.raises(SizingError, match="multiple of 6") as info:
        plan(R1, "fp8", gpu_memory_gib=80, product=None, count=16, max_per_node=6, max_nodes=8)
    assert info.value.field_path == "spec.resources.gpu.count"
    with pytest.raises(SizingError, match=r"more than maxNodes \(8\)"):
        plan(R1, "fp8", gpu_memory_gib=80, product=None, count=128, max_nodes=8)
