"""Facts the GPU plan is built from: DeepSeek models and GPU products.

Model numbers are copied from each checkpoint's published ``config.json``; parameter counts
are the checkpoints' own (safetensors metadata). GPU memory is what ``nvidia-smi`` reports
(MiB, converted to GiB), because that, not the marketing figure, is what a process can use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

GIB = 1024**3
# GPU feature discovery's node labels: the product name, and the memory per GPU in MiB.
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What sizing needs to know about a model."""

    name: str
    parameters: int  # total, every expert included
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int  # GQA heads; unused for MLA
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    native_dtype: str = "bf16"  # the checkpoint's own precision
    # Multi-head latent attention (DeepSeek-V2/V3/R1): the cache holds one compressed latent
    # (kv_lora_rank) plus the decoupled RoPE key (qk_rope_head_dim) per token and layer.
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0

    @property
    def uses_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus LM head: usually kept in 16-bit by weight-only quantizers."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    def kv_elements_per_token(self) -> int:
        if self.uses_mla:
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim


# fmt: off
# DeepSeek-V2/V3/R1: multi-head latent attention (K and V share a 512 latent plus 64 RoPE dims;
# head_dim is 128 + 64), 160k context; the checkpoints in a row share one config.json.
#   parameters       hidden layers heads vocab   native  checkpoints
_MLA: list[tuple[int, int, int, int, int, str, tuple[str, ...]]] = [
    (671_026_419_200, 7168, 61,    128,  129280, "fp8",  ("R1", "R1-0528", "V3", "V3-0324")),
    (235_741_434_880, 5120, 60,    128,  102400, "bf16", ("V2", "V2-Chat", "Coder-V2-Instruct")),
    (15_706_484_224,  2048, 27,    16,   102400, "bf16", ("V2-Lite", "V2-Lite-Chat",
                                                          "Coder-V2-Lite-Instruct")),
]
# The R1-Distill models: Qwen2 and Llama checkpoints, grouped-query attention, 128k context.
#   checkpoint              parameters      hidden layers heads KV  vocab
_DISTILL: list[tuple[str, int, int, int, int, int, int]] = [
    ("R1-Distill-Qwen-1.5B", 1_777_088_000,  1536,  28,    12,   2, 151936),
    ("R1-Distill-Qwen-7B",   7_615_616_512,  3584,  28,    28,   4, 152064),
    ("R1-Distill-Llama-8B",  8_030_261_248,  4096,  32,    32,   8, 128256),
    ("R1-Distill-Qwen-14B",  14_770_033_664, 5120,  48,    40,   8, 152064),
    ("R1-Distill-Qwen-32B",  32_763_876_352, 5120,  64,    40,   8, 152064),
    ("R1-Distill-Llama-70B", 70_553_706_496, 8192,  80,    64,   8, 128256),
]
# Both as ModelFacts' fields: name, parameters, hidden, layers, heads, KV heads, head_dim,
# vocab, context, tied embeddings, native precision, kv_lora_rank, qk_rope_head_dim.
_ROWS: list[tuple[str, int, int, int, int, int, int, int, int, bool, str, int, int]] = [
    *((name, p, hidden, layers, heads, heads, 192, vocab, 163840, False, native, 512, 64)
      for p, hidden, layers, heads, vocab, native, names in _MLA for name in names),
    *((name, p, hidden, layers, heads, kv, hidden // heads, vocab, 131072, False, "bf16", 0, 0)
      for name, p, hidden, layers, heads, kv, vocab in _DISTILL),
]
# fmt: on
MODELS: dict[str, ModelFacts] = {
    f"deepseek-ai/deepseek-{row[0].lower()}": ModelFacts(f"deepseek-ai/DeepSeek-{row[0]}", *row[1:])
    for row in _ROWS
}


@dataclass(frozen=True, slots=True)
class GpuProduct:
    """One GPU model, named as NVIDIA's GPU feature discovery labels it."""

    product: str  # the nvidia.com/gpu.product node label
    memory_mib: int
    compute_capability: float
    aliases: tuple[str, ...] = ()

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def supports_fp8(self) -> bool:
        return self.compute_capability >= 8.9  # Ada and Hopper have FP8 tensor cores


GPUS: dict[str, GpuProduct] = {
    g.product.lower(): g
    for g in [
        GpuProduct("NVIDIA-L4", 23034, 8.9, ("l4",)),
        GpuProduct("NVIDIA-A10G", 23028, 8.6, ("a10g",)),
        GpuProduct("NVIDIA-GeForce-RTX-4090", 24564, 8.9, ("rtx-4090", "4090")),
        GpuProduct("NVIDIA-A100-SXM4-40GB", 40960, 8.0, ("a100-40gb", "a100-40")),
        GpuProduct("NVIDIA-L40S", 46068, 8.9, ("l40s",)),
        GpuProduct(
            "NVIDIA-A100-SXM4-80GB", 81920, 8.0, ("a100-80gb", "a100-80", "nvidia-a100-80gb-pcie")
        ),
        GpuProduct("NVIDIA-H100-80GB-HBM3", 81559, 9.0, ("h100", "h100-80gb", "nvidia-h100")),
        GpuProduct("NVIDIA-H200", 143771, 9.0, ("h200", "nvidia-h200-141gb")),
        GpuProduct("NVIDIA-B200", 183359, 10.0, ("b200",)),
    ]
}


def find_gpu(name: str) -> GpuProduct | None:
    key = name.strip().lower()
    if key in GPUS:
        return GPUS[key]
    return next((g for g in GPUS.values() if key in g.aliases), None)


def advertised_gpus(node_labels: Iterable[dict[str, str]]) -> list[GpuProduct]:
    """The GPUs nodes advertise, one per product label value (kept as the nodes spell it, so a
    selector on it matches): the catalogue's facts for a known product, else the node's memory
    label (and no FP8 assumed); a product with neither is left out."""
    found: dict[str, GpuProduct] = {}
    for labels in node_labels:
        name = labels.get(PRODUCT_LABEL)
        if not name or name in found:
            continue
        known = find_gpu(name)
        if known is not None:
            found[name] = replace(known, product=name, aliases=())
        elif (labels.get(MEMORY_LABEL) or "").isdigit():
            found[name] = GpuProduct(name, int(labels[MEMORY_LABEL]), 0.0)
    return list(found.values())


def find_model(name: str) -> ModelFacts | None:
    """Look a model up by its Hugging Face id, or by the id's last part alone."""
    key = name.strip().lower()
    if key in MODELS:
        return MODELS[key]
    short = key.rsplit("/", 1)[-1]
    return next((m for k, m in MODELS.items() if k.rsplit("/", 1)[-1] == short), None)


def facts_from_config(
    config: dict[str, Any], name: str, parameters: int | None = None
) -> ModelFacts:
    """Model facts from a ``config.json``; parameters estimated from shapes when not given."""
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    vocab = int(config["vocab_size"])
    tie = bool(config.get("tie_word_embeddings", False))
    kv_lora = int(config.get("kv_lora_rank") or 0)
    rope = int(config.get("qk_rope_head_dim") or 0)
    qcfg = config.get("quantization_config") or {}
    native = "fp8" if qcfg.get("quant_method") == "fp8" else "bf16"
    if parameters is None:
        parameters = _estimate_parameters(
            config, hidden, layers, heads, kv_heads, head_dim, vocab, tie
        )
    return ModelFacts(
        name=name,
        parameters=parameters,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        max_position_embeddings=int(config.get("max_position_embeddings", 4096)),
        tie_word_embeddings=tie,
        native_dtype=native,
        kv_lora_rank=kv_lora,
        qk_rope_head_dim=rope,
    )


def _estimate_parameters(
    config: dict[str, Any],
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    tie: bool,
) -> int:
    """Dense transformer parameter count from shapes (MoE experts included when present)."""
    inter = int(config.get("intermediate_size") or 4 * hidden)
    attn = hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden
    experts = int(config.get("n_routed_experts") or 0)
    if experts:
        moe_inter = int(config.get("moe_intermediate_size") or inter)
        shared = int(config.get("n_shared_experts") or 0)
        dense_layers = int(config.get("first_k_dense_replace") or 0)
        moe_mlp = 3 * hidden * moe_inter * (experts + shared) + hidden * experts
        mlp_total = dense_layers * 3 * hidden * inter + (layers - dense_layers) * moe_mlp
    else:
        mlp_total = layers * 3 * hidden * inter
    embeddings = vocab * hidden * (1 if tie else 2)
    return layers * attn + mlp_total + embeddings


def facts_from_directory(path: Path, name: str | None = None) -> ModelFacts:
    """Read a local model directory's ``config.json`` (and safetensors index for the count)."""
    config = json.loads((path / "config.json").read_text())
    params = None
    index = path / "model.safetensors.index.json"
    if index.is_file():
        total = json.loads(index.read_text()).get("metadata", {}).get("total_parameters")
        params = int(total) if total else None
    return facts_from_config(config, name or path.name, params)
