"""Model facts + quantization + context + concurrency -> a GPU plan.

Memory per GPU = weights / TP + KV cache / TP + runtime overhead, and it must fit in the usable
share of the GPU's memory. The KV cache is reserved for ``concurrency`` sequences at the full
context length, so admission never has to preempt: per-head K and V for the Qwen/Llama
R1-Distill models, the compressed MLA latent (kv_lora_rank + rope dims) for DeepSeek-V2/V3/R1.
The tensor-parallel degree is the smallest power of two that fits, divides the attention heads
and stays within one node.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepseek_operator.api import GpuPlanStatus, Quantization
from deepseek_operator.catalog import GIB, GPUS, GpuProduct, ModelFacts, find_model

USABLE_FRACTION = 0.90  # of GPU memory; the rest is the allocator's and the driver's slack
OVERHEAD_GIB = 2.0  # per GPU: CUDA context, cuBLAS/NCCL workspaces, activations at peak
DEFAULT_MAX_MODEL_LEN = 8192
KV_BYTES = 2  # the KV cache stays in 16-bit whatever the weights are

# Bytes per parameter of the quantized linear layers; group-wise int4 formats carry a 16-bit
# scale (and zero) per group of 128 weights, hence the small surcharge.
WEIGHT_BYTES: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 4 / 128,
    "awq": 0.5 + 4 / 128,
    "gptq": 0.5 + 4 / 128,
}


class SizingError(ValueError):
    """The request cannot be planned; the message says what would work instead."""

    def __init__(self, message: str, field_path: str = "spec.resources.gpu") -> None:
        super().__init__(message)
        self.field_path = field_path


@dataclass(frozen=True, slots=True)
class GpuPlan:
    model: str
    quantization: str
    product: str | None
    gpu_memory_gib: float | None
    gpus: int
    tensor_parallel: int
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    max_model_len: int
    concurrency: int
    # Where the pods may run: none (any GPU node), the product named, or the products among the
    # cluster's that can serve the model. ``basis`` says in words what the plan was sized for
    # when the user did not name it, and ``reason`` is the GpuPlanned condition's reason.
    node_products: tuple[str, ...] = ()
    basis: str = ""
    reason: str = "Planned"

    @property
    def per_gpu_gib(self) -> float:
        return (self.weights_gib + self.kv_cache_gib) / self.tensor_parallel + self.overhead_gib

    def summary(self) -> str:
        where = self.product or (
            f"{self.gpu_memory_gib:g} GiB GPUs" if self.gpu_memory_gib else "GPUs"
        )
        return (
            f"{self.gpus} x {where}, TP={self.tensor_parallel}: weights "
            f"{self.weights_gib:.1f} GiB + KV {self.kv_cache_gib:.1f} GiB "
            f"({self.concurrency} x {self.max_model_len} tokens), "
            f"{self.per_gpu_gib:.1f} GiB per GPU"
        )

    def status(self) -> GpuPlanStatus:
        return GpuPlanStatus(
            gpus_per_replica=self.gpus,
            tensor_parallel=self.tensor_parallel,
            product=self.node_products[0] if len(self.node_products) == 1 else None,
            gpu_memory_gi_b=_round(self.gpu_memory_gib),
            weights_gi_b=_round(self.weights_gib),
            kv_cache_gi_b=_round(self.kv_cache_gib),
            overhead_gi_b=_round(self.overhead_gib),
            per_gpu_gi_b=_round(self.per_gpu_gib),
            max_model_len=self.max_model_len,
            summary=self.summary(),
        )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def effective_precision(model: ModelFacts, quantization: str) -> str:
    """'none' means the checkpoint's own precision (FP8 for DeepSeek-V3/R1, else bf16)."""
    return model.native_dtype if quantization == Quantization.none else quantization


def weight_bytes(model: ModelFacts, quantization: str) -> float:
    precision = effective_precision(model, quantization)
    per_param = WEIGHT_BYTES[precision]
    if per_param >= 2.0:
        return model.parameters * per_param
    # Weight-only quantizers leave the embeddings and LM head in 16-bit.
    embed = min(model.embedding_parameters, model.parameters)
    return (model.parameters - embed) * per_param + embed * 2.0


def kv_cache_bytes(model: ModelFacts, max_model_len: int, concurrency: int) -> float:
    return model.kv_elements_per_token() * KV_BYTES * max_model_len * concurrency


def check_product(gpu: GpuProduct, model: ModelFacts, quantization: str) -> None:
    precision = effective_precision(model, quantization)
    if precision == "fp8" and not gpu.supports_fp8:
        capable = ", ".join(g.product for g in GPUS.values() if g.supports_fp8)
        why = (
            f"{model.name} ships FP8 weights (quantization none)"
            if quantization == Quantization.none
            else "fp8"
        )
        raise SizingError(
            f"{why} needs FP8 tensor cores (compute capability >= 8.9); "
            f"{gpu.product} has {gpu.compute_capability}. Use one of: {capable}; "
            "or choose quantization int8, int4, awq or gptq.",
            "spec.quantization",
        )


def plan(
    model: ModelFacts,
    quantization: str,
    *,
    gpu_memory_gib: float,
    product: str | None,
    max_model_len: int | None = None,
    concurrency: int = 32,
    count: int | None = None,
    max_per_node: int = 8,
) -> GpuPlan:
    """Plan one replica. ``count`` None means choose the smallest fitting power of two."""
    if max_model_len and max_model_len > model.max_position_embeddings:
        raise SizingError(
            f"maxModelLen {max_model_len} exceeds {model.name}'s context of "
            f"{model.max_position_embeddings} tokens",
            "spec.runtime.maxModelLen",
        )
    if count is not None and (count & (count - 1) or model.num_attention_heads % count):
        raise SizingError(
            f"gpu count {count} must be a power of two that divides "
            f"{model.name}'s {model.num_attention_heads} attention heads "
            "(tensor parallelism)",
            "spec.resources.gpu.count",
        )
    found = fit(
        model,
        quantization,
        gpu_memory_gib=gpu_memory_gib,
        product=product,
        max_model_len=max_model_len,
        concurrency=concurrency,
        count=count,
        max_per_node=max_per_node,
    )
    if found is None:
        tp = count or _next_power_of_two(max_per_node + 1)
        closest = _build(
            model, quantization, product, gpu_memory_gib, tp, max_model_len, concurrency
        )
        raise SizingError(
            _too_small(closest, gpu_memory_gib * USABLE_FRACTION, max_per_node, count)
        )
    return found


def fit(
    model: ModelFacts,
    quantization: str,
    *,
    gpu_memory_gib: float,
    product: str | None,
    max_model_len: int | None,
    concurrency: int,
    count: int | None,
    max_per_node: int,
) -> GpuPlan | None:
    """The smallest plan that fits (or the one with ``count`` GPUs), else None."""
    usable = gpu_memory_gib * USABLE_FRACTION
    degrees = [count] if count is not None else _powers_of_two(max_per_node)
    for tp in degrees:
        if model.num_attention_heads % tp:
            continue
        candidate = _build(
            model, quantization, product, gpu_memory_gib, tp, max_model_len, concurrency
        )
        if candidate.per_gpu_gib <= usable:
            return candidate
    return None


def _build(
    model: ModelFacts,
    quantization: str,
    product: str | None,
    gpu_memory_gib: float,
    tp: int,
    max_model_len: int | None,
    concurrency: int,
) -> GpuPlan:
    ctx = min(max_model_len or DEFAULT_MAX_MODEL_LEN, model.max_position_embeddings)
    return GpuPlan(
        model.name,
        str(quantization),
        product,
        gpu_memory_gib,
        tp,
        tp,
        weight_bytes(model, quantization) / GIB,
        kv_cache_bytes(model, ctx, concurrency) / GIB,
        OVERHEAD_GIB,
        ctx,
        concurrency,
    )


def _powers_of_two(limit: int) -> list[int]:
    return [1 << i for i in range(limit.bit_length()) if 1 << i <= limit]


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _too_small(p: GpuPlan, usable: float, max_per_node: int, count: int | None = None) -> str:
    where = p.product or f"{p.gpu_memory_gib:g} GiB GPU"
    need = (p.weights_gib + p.kv_cache_gib) / max(usable - p.overhead_gib, 0.1)
    if count is None:
        need = max(need, max_per_node + 1)
    head = (
        f"{p.model} with quantization {p.quantization} needs {p.weights_gib:.0f} GiB of "
        f"weights + {p.kv_cache_gib:.1f} GiB of KV cache ({p.concurrency} sequences x "
        f"{p.max_model_len} tokens)"
    )
    if count is not None:
        head += f"; {count} x {where} give {count * usable:.0f} GiB usable"
    else:
        head += f": about {need:.1f} x {where}, more than the {max_per_node} GPUs one node offers"
    alternatives = suggest(p, max_per_node)
    tail = (
        "What would fit: " + "; ".join(alternatives) + "."
        if alternatives
        else "Nothing in the catalogue fits on one node; lower maxModelLen "
        "or maxConcurrentSequences."
    )
    return f"{head}. {tail}"


def suggest(p: GpuPlan, max_per_node: int, limit: int = 3) -> list[str]:
    """Other (quantization, product, count) that fit one node, smallest total memory first."""
    model = find_model(p.model)
    if model is None:
        return []
    options: list[tuple[float, str]] = []
    quantizations = [p.quantization, *(q for q in ("fp8", "int8", "int4") if q != p.quantization)]
    for q in quantizations:
        for gpu in GPUS.values():
            try:
                check_product(gpu, model, q)
            except SizingError:
                continue
            found = fit(
                model,
                q,
                gpu_memory_gib=gpu.memory_gib,
                product=gpu.product,
                max_model_len=p.max_model_len,
                concurrency=p.concurrency,
                count=None,
                max_per_node=max_per_node,
            )
            if found is not None:
                options.append(
                    (
                        found.gpus * gpu.memory_gib,
                        f"quantization {q} on {found.gpus} x {gpu.product}",
                    )
                )
        if len(options) >= limit:
            break
    options.sort()
    seen: list[str] = []
    for _, text in options:
        if text not in seen:
            seen.append(text)
    return seen[:limit]
