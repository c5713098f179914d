"""A local model (see source.py) -> model + tokenizer, in eval mode, quantized as asked.

Every load passes local_files_only=True (and the package sets HF_HUB_OFFLINE): nothing here
downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepseek_runtime.model.quantization import (
    PREQUANTIZED,
    Dtype,
    Quantization,
    check_combination,
    quantization_config,
    quantize_after_load,
)
from deepseek_runtime.model.sharding import check_shardable
from deepseek_runtime.model.source import (
    checkpoint_quantization,
    default_model_path,
    resolve_source,
)


@dataclass(slots=True, frozen=True)
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (a causal LM), in eval mode; with int8 or gguf
    # on CPU for the Llama family, a compact.CompactCausalLM (no `generate`)
    tokenizer: Any  # its transformers tokenizer
    model_name: str
    max_model_len: int
    architecture: str  # e.g. "DeepseekV3ForCausalLM"
    dtype: torch.dtype  # of the activations (int8 dynamic quantization computes in float32)
    quantization: str  # what was applied or found: "none", "int8", "awq", ...
    eos_token_ids: tuple[int, ...]
    pad_token_id: int = 0


def _eos_token_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    for candidate in (model.generation_config.eos_token_id, model.config.eos_token_id,
                      tokenizer.eos_token_id):  # fmt: skip
        if candidate is not None:
            ids = candidate if isinstance(candidate, list | tuple) else [candidate]
            return tuple(dict.fromkeys(int(i) for i in ids))
    return ()


def _from_pretrained(directory: Path, kwargs: dict[str, Any]) -> Any:
    from transformers import AutoModelForCausalLM

    try:  # sdpa honours the padding mask batched decoding relies on; eager is the fallback
        return AutoModelForCausalLM.from_pretrained(directory, attn_implementation="sdpa", **kwargs)
    except ValueError as exc:
        if "sdpa" not in str(exc).lower():
            raise
    return AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager", **kwargs)


def load_model(
    path: str | Path | None = None,
    *,
    dtype: Dtype | str = "auto",
    quantization: Quantization | str = "none",
    model_name: str | None = None,
    device: str | None = None,
    tensor_parallel_size: int = 1,
) -> LoadedModel:
    """Load a local model for serving; path None means the bundled SmolLM2 GGUF.

    With tensor_parallel_size > 1, every rank of the (already initialised) default process
    group calls this at once and gets its shard (model/sharding.py says which models split).
    """
    from transformers import AutoTokenizer

    source = resolve_source(default_model_path() if path is None else path)
    check_shardable(source, str(quantization), tensor_parallel_size)
    cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    prequantized = checkpoint_quantization(source)
    load_dtype, applied = check_combination(dtype, quantization, cuda, prequantized)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if source.gguf_file is not None:
        common["gguf_file"] = source.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source.directory, **common)
    kwargs: dict[str, Any] = {**common, "dtype": load_dtype or "auto"}
    quant_config = quantization_config(applied) if prequantized is None else None
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
    if tensor_parallel_size > 1:  # each rank reads its slices, onto its own device
        from transformers.distributed import DistributedConfig

        kwargs["distributed_config"] = DistributedConfig(tp_size=tensor_parallel_size)
    elif quant_config is not None or applied in PREQUANTIZED:
        kwargs["device_map"] = device or "cuda"  # quantized weights are placed while loading
    model = _from_pretrained(source.directory, kwargs)
    if "device_map" not in kwargs and tensor_parallel_size == 1:
        model.to(torch.device(device or ("cuda" if cuda else "cpu")))
    gguf = source.directory / source.gguf_file if source.gguf_file is not None else None
    model = quantize_after_load(model.eval(), applied, cuda, tokenizer, gguf)
    text_config = model.config.get_text_config()
    eos_ids = _eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or (0,))[0]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_name=model_name or source.name,
        max_model_len=int(getattr(text_config, "max_position_embeddings", 2048)),
        architecture=(model.config.architectures or [type(model).__name__])[0],
        dtype=next(p.dtype for p in model.parameters() if p.is_floating_point()),
        quantization=applied,
        eos_token_ids=eos_ids,
        pad_token_id=int(pad),
    )
