"""What can be split over tensor-parallel ranks is decided from config.json, before loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deepseek_runtime.model.sharding import check_shardable
from deepseek_runtime.model.source import ModelSource

LLAMA = {"architectures": ["LlamaForCausalLM"], "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336}  # fmt: skip
DEEPSEEK = {"architectures": ["DeepseekV3ForCausalLM"], "num_attention_heads": 128,
            "num_key_value_heads": 128, "intermediate_size": 18432,
            "moe_intermediate_size": 2048}  # fmt: skip


def source(tmp_path: Path, config: dict[str, Any], gguf: str | None = None) -> ModelSource:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return ModelSource(tmp_path, gguf, "m")


@pytest.mark.parametrize("degree", [1, 2, 4, 8])
def test_llama_splits_by_degrees_that_divide_its_kv_heads(tmp_path: Path, degree: int) -> None:
    check_shardable(source(tmp_path, LLAMA), "bf16", degree)


def test_a_degree_that_does_not_divide_the_kv_heads_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_key_value_heads = 8 of m does not divide into 16"):
        check_shardable(source(tmp_path, LLAMA), "none", 16)


def test_deepseek_keeps_its_attention_whole_so_only_the_mlps_must_divide(tmp_path: Path) -> None:
    check_shardable(source(tmp_path, {**DEEPSEEK, "num_attention_heads": 3}), "fp8", 16)
    with pytest.raises(ValueError, match="moe_intermediate_size = 2048"):
        check_shardable(source(tmp_path, {**DEEPSEEK, "moe_intermediate_size": 2048}), "none", 3)


@pytest.mark.parametrize(
    ("config", "gguf", "quantization", "message"),
    [
        (LLAMA, "m.Q4_1.gguf", "none", "m.Q4_1.gguf is a GGUF file"),
        (LLAMA, None, "int8", "quantization 'int8' cannot be sharded"),
        (LLAMA, None, "bnb-nf4", "use one of none, bf16, fp16, fp8"),
        (
            {**LLAMA, "quantization_config": {"quant_method": "awq"}},
            None,
            "none",
            "is a awq checkpoint",
        ),
        (
            {**LLAMA, "architectures": ["GPT2LMHeadModel"]},
            None,
            "none",
            "GPT2LMHeadModel has no tensor-parallel plan",
        ),
    ],
)
def test_what_cannot_be_sharded_is_refused_by_name(
    tmp_path: Path, config: dict[str, Any], gguf: str | None, quantization: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_shardable(source(tmp_path, config, gguf), quantization, 2)


def test_one_rank_needs_no_check(tmp_path: Path) -> None:
    check_shardable(source(tmp_path, LLAMA, "m.gguf"), "int8", 1)
