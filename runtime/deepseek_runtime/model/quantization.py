"""Which dtype and quantization this machine can run, and applying them.

On CPU: bf16/fp16 casts and int8: for the Llama family the compact model with calibrated int8
weights (compact_weights.py), for the rest torch dynamic int8 on nn.Linear; and gguf: a Llama
family GGUF's own 4/8-bit blocks kept as the compact model's weights (gguf_weights.py). On a
CUDA GPU also bitsandbytes (bnb-int8, bnb-nf4), torchao weight-only (int8, int4), FP8 on load,
and checkpoints that arrive pre-quantized (AWQ, GPTQ, FP8), detected from config.json's
quantization_config.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal[
    "none", "bf16", "fp16", "int8", "int4", "bnb-int8", "bnb-nf4", "awq", "gptq", "fp8", "gguf"
]
BOTH = ("none", "bf16", "fp16", "int8")
CPU_QUANTIZATIONS: tuple[str, ...] = (*BOTH, "gguf")
GPU_QUANTIZATIONS: tuple[str, ...] = (*BOTH, "int4", "bnb-int8", "bnb-nf4", "awq", "gptq", "fp8")
KNOWN = (*GPU_QUANTIZATIONS, "gguf")
PREQUANTIZED = ("awq", "gptq", "fp8")  # quant_method values of a checkpoint's quantization_config
CHECKPOINT_ONLY = ("awq", "gptq")  # fp8 can also be applied on load (GPU)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CAST_QUANTIZATIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}


class UnsupportedQuantizationError(ValueError):
    """The requested dtype/quantization cannot run on this machine or with this checkpoint."""


def check_combination(
    dtype: str, quantization: str, cuda: bool, prequantized: str | None
) -> tuple[torch.dtype | None, str]:
    """Validate a dtype/quantization pair for this machine; return (load dtype, quantization)."""
    supported = GPU_QUANTIZATIONS if cuda else CPU_QUANTIZATIONS
    where = "a CUDA GPU" if cuda else "CPU (no CUDA GPU found)"
    if dtype != "auto" and dtype not in DTYPES:
        raise UnsupportedQuantizationError(f"dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    if quantization not in KNOWN:
        raise UnsupportedQuantizationError(
            f"unknown quantization {quantization!r}; on {where} use one of {', '.join(supported)}"
        )
    if prequantized is not None:
        if not cuda:
            raise UnsupportedQuantizationError(
                f"this checkpoint is pre-quantized ({prequantized}) and needs a CUDA GPU; on "
                f"{where} use an unquantized checkpoint with one of {', '.join(supported)}"
            )
        if quantization not in ("none", prequantized):
            raise UnsupportedQuantizationError(
                f"this checkpoint is already quantized with {prequantized}; "
                f"use quantization none or {prequantized}"
            )
        return DTYPES.get(dtype), prequantized  # None: the checkpoint's own dtype
    if quantization not in supported:
        raise UnsupportedQuantizationError(
            f"quantization {quantization!r} is not supported on {where}; "
            f"use one of {', '.join(supported)}"
        )
    if quantization in CHECKPOINT_ONLY:
        raise UnsupportedQuantizationError(
            f"{quantization} needs a checkpoint quantized with {quantization} (config.json "
            "quantization_config); this one is not"
        )
    cast = CAST_QUANTIZATIONS.get(quantization)
    if cast is not None:
        if dtype != "auto" and DTYPES[dtype] != cast:
            raise UnsupportedQuantizationError(f"quantization {quantization} implies dtype {cast}")
        return cast, quantization
    if quantization in ("int8", "gguf") and not cuda:
        if dtype not in ("auto", "float32"):
            raise UnsupportedQuantizationError(
                f"{quantization} on CPU computes in float32: use dtype float32 or auto"
            )
        return torch.float32, quantization
    if dtype == "auto":
        # GPUs take the checkpoint's dtype (None); CPUs float32, as fp16 kernels are slow there.
        return (None if cuda else torch.float32), quantization
    return DTYPES[dtype], quantization


def quantization_config(quantization: str) -> Any:
    """What transformers applies while loading (GPU only); None for the rest."""
    if quantization == "fp8":  # fine-grained FP8 needs compute capability >= 8.9 (Ada, Hopper)
        from transformers import FineGrainedFP8Config

        return FineGrainedFP8Config()
    if quantization not in ("bnb-int8", "bnb-nf4"):
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )


def quantize_after_load(
    model: Any, quantization: str, cuda: bool, tokenizer: Any = None, gguf: Path | None = None
) -> Any:
    if quantization == "gguf":
        return _gguf_blocks(model, gguf)
    if quantization == "int8" and not cuda and tokenizer is not None:
        # Llama family: the compact model with calibrated int8 weights (compact_weights.py),
        # 2x the decode speed of dynamic quantization on the demo model. Not exact.
        from deepseek_runtime.model.compact import compact_model
        from deepseek_runtime.model.compact_weights import quantize_int8

        compact = compact_model(model)
        if compact is not None:
            return quantize_int8(compact, tokenizer)
    if quantization == "int8" and not cuda:
        # Only nn.Linear: DeepseekV3's routed experts are 3-D parameters and stay float.
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch.ao is deprecated for torchao, which is slower here
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if quantization in ("int8", "int4") and cuda:
        try:
            from torchao.quantization import (
                Int4WeightOnlyConfig,
                Int8WeightOnlyConfig,
                quantize_,
            )
        except ImportError as exc:
            raise UnsupportedQuantizationError(f"{quantization} on GPU needs torchao") from exc
        config = Int8WeightOnlyConfig() if quantization == "int8" else Int4WeightOnlyConfig()
        quantize_(model, config)
    return model


def _gguf_blocks(model: Any, gguf: Path | None) -> Any:
    """The compact model computing from the GGUF's blocks (gguf_weights.py)."""
    from deepseek_runtime.model.compact import compact_model
    from deepseek_runtime.model.gguf_kernel import KernelUnavailableError
    from deepseek_runtime.model.gguf_layer import fuse_layers
    from deepseek_runtime.model.gguf_weights import use_gguf_blocks

    if gguf is None:
        raise UnsupportedQuantizationError(
            "quantization gguf keeps a GGUF file's own blocks: the model must be a .gguf file"
        )
    compact = compact_model(model)
    if compact is None:
        raise UnsupportedQuantizationError(
            f"quantization gguf needs a Llama-family model (this one is "
            f"{getattr(model.config, 'model_type', '?')}); use none or int8"
        )
    try:
        return fuse_layers(use_gguf_blocks(compact, gguf))
    except KernelUnavailableError as exc:
        raise UnsupportedQuantizationError(f"quantization gguf: {exc}") from exc
