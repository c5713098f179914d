"""Which models this runtime shards over tensor-parallel ranks, checked from config.json before
anything loads (no torch here), and the arguments that make transformers shard while loading.

transformers 5 ships tensor-parallel plans (`base_model_tp_plan`): Llama and Qwen2 split their
attention by heads (q/k/v column-wise, o row-wise) and their MLPs by the intermediate size;
DeepseekV3 keeps its attention (MLA) whole on every rank (its plan has no attention rules: the
compressed latent is shared by all heads) and splits its dense MLPs, shared experts and routed
experts by the intermediate size. Every rank reads only its slices of the weights: the model is
never whole on one device. The vocabulary is split too (lm_head column-wise, gathered).
"""

from __future__ import annotations

import json
from typing import Any

from deepseek_runtime.model.source import ModelSource, checkpoint_quantization

SHARDABLE = ("LlamaForCausalLM", "Qwen2ForCausalLM", "DeepseekV3ForCausalLM")
SHARDABLE_QUANTIZATIONS = ("none", "bf16", "fp16", "fp8")
WHOLE_ATTENTION = ("DeepseekV3ForCausalLM",)


def _split_dimensions(config: dict[str, Any], architecture: str) -> dict[str, int]:
    """The sizes the plan divides by the degree, by config key."""
    dims: dict[str, int] = {}
    if architecture not in WHOLE_ATTENTION:  # heads first: the usual reason a degree fails
        heads = int(config.get("num_attention_heads") or 0)
        dims["num_attention_heads"] = heads
        dims["num_key_value_heads"] = int(config.get("num_key_value_heads") or heads)
    dims["intermediate_size"] = int(config.get("intermediate_size") or 0)
    if architecture in WHOLE_ATTENTION:
        dims["moe_intermediate_size"] = int(config.get("moe_intermediate_size") or 0)
    return {k: v for k, v in dims.items() if v}


def check_shardable(source: ModelSource, quantization: str, degree: int) -> None:
    """ValueError naming what stops `source` from being split over `degree` ranks."""
    if degree <= 1:
        return
    where = f"--tensor-parallel-size {degree}"
    if source.gguf_file is not None:
        raise ValueError(
            f"{where}: {source.gguf_file} is a GGUF file, which loads whole on every rank; "
            "tensor parallelism needs a save_pretrained (safetensors) directory"
        )
    if quantization not in SHARDABLE_QUANTIZATIONS:
        raise ValueError(
            f"{where}: quantization {quantization!r} cannot be sharded; use one of "
            f"{', '.join(SHARDABLE_QUANTIZATIONS)}"
        )
    found = checkpoint_quantization(source)
    if found not in (None, "fp8"):
        raise ValueError(f"{where}: {source.directory} is a {found} checkpoint, which cannot be "
                         "sharded; use a bf16, fp16 or fp8 checkpoint")  # fmt: skip
    config = json.loads((source.directory / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in SHARDABLE:
        raise ValueError(f"{where}: {architecture} has no tensor-parallel plan here; "
                         f"supported: {', '.join(SHARDABLE)}")  # fmt: skip
    for key, size in _split_dimensions(config, architecture).items():
        if size % degree:
            raise ValueError(
                f"{where}: {key} = {size} of {source.name} does not divide into {degree} "
                f"equal shards; use a degree that divides it"
            )
