"""Model facts + quantization + context + concurrency -> a GPU plan.

Memory per GPU = weights / TP + KV cache / TP + runtime overhead, and it must fit in the usable
share of the GPU's memory. The KV cache is reserved for ``concurrency`` sequences at the full
context length, so admission never has to preempt: per-head K and V for the Qwen/Llama
R1-Distill models, the compressed MLA latent (kv_lora_rank + rope dims) for DeepSeek-V2/V3/R1.
The tensor-parallel degree is the smallest that fits and divides the attention heads: a power of
two within one node, else a group of whole nodes (a LeaderWorkerSet: every pod takes all
``max_per_node`` GPUs of its node, so TP = max_per_node x nodes), at most ``max_nodes`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepseek_operator.api import GpuPlanStatus, GpuSpec, Quantization
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
    gpus_per_node: int  # what each pod requests
    nodes: int  # pods per replica: more than 1 is a LeaderWorkerSet group
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
    def gpus(self) -> int:
        """GPUs per replica, every node's."""
        return self.gpus_per_node * self.nodes

    @property
    def tensor_parallel(self) -> int:
        return self.gpus  # one rank per GPU, across the whole group

    @property
    def per_gpu_gib(self) -> float:
        return (self.weights_gib + self.kv_cache_gib) / self.tensor_parallel + self.overhead_gib

    def layout(self) -> str:
        """'4' (GPUs on one node) or '8x2' (GPUs per node x nodes)."""
        return f"{self.gpus_per_node}x{self.nodes}" if self.nodes > 1 else str(self.gpus)

    def summary(self) -> str:
        where = self.product or (
            f"{self.gpu_memory_gib:g} GiB GPUs" if self.gpu_memory_gib else "GPUs"
        )
        spread = f" ({self.gpus_per_node} per node x {self.nodes} nodes)" if self.nodes > 1 else ""
        return (
            f"{self.gpus} x {where}{spread}, TP={self.tensor_parallel}: weights "
            f"{self.weights_gib:.1f} GiB + KV {self.kv_cache_gib:.1f} GiB "
            f"({self.concurrency} x {self.max_model_len} tokens), "
            f"{self.per_gpu_gib:.1f} GiB per GPU"
        )

    def status(self) -> GpuPlanStatus:
        return GpuPlanStatus(
            gpus_per_replica=self.gpus,
            gpus_per_node=self.gpus_per_node,
            nodes=self.nodes,
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


@dataclass(frozen=True, slots=True)
class Limits:
    """How GPUs may be laid out for one replica: at most ``max_per_node`` per node (a pod that
    spans nodes takes all of them) and at most ``max_nodes`` nodes."""

    max_per_node: int
    max_nodes: int = 1

    @classmethod
    def of(cls, gpu: GpuSpec) -> Limits:
        return cls(gpu.max_per_node, gpu.max_nodes)


def split_count(count: int, limits: Limits) -> tuple[int, int]:
    """(GPUs per node, nodes) for a replica of ``count`` GPUs."""
    if count <= limits.max_per_node:
        return count, 1
    nodes = count // limits.max_per_node
    if count % limits.max_per_node:
        raise SizingError(
            f"gpu count {count} is more than one node's {limits.max_per_node} GPUs (maxPerNode), "
            f"so it spans nodes whose pods each take all {limits.max_per_node}: it must be a "
            f"multiple of {limits.max_per_node}",
            "spec.resources.gpu.count",
        )
    if nodes > limits.max_nodes:
        raise SizingError(
            f"gpu count {count} spans {nodes} nodes of {limits.max_per_node} GPUs, more than "
            f"maxNodes ({limits.max_nodes})",
            "spec.resources.gpu.count",
        )
    return limits.max_per_node, nodes


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
    max_nodes: int = 1,
) -> GpuPlan:
    """Plan one replica. ``count`` None means choose the smallest fitting layout."""
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
    limits = Limits(max_per_node, max_nodes)
    request = Request(model, quantization, product, gpu_memory_gib, max_model_len, concurrency)
    found = fit(request, count, limits)
    if found is None:
        largest = split_count(count, limits) if count else (max_per_node, max_nodes)
        raise SizingError(_too_small(request.build(largest), model, request.usable, limits, count))
    return found


def layouts(model: ModelFacts, limits: Limits) -> list[tuple[int, int]]:
    """(GPUs per node, nodes) to try, fewest GPUs first: powers of two within one node, then
    groups of whole nodes; each dividing the attention heads (tensor parallelism)."""
    one_node = [(tp, 1) for tp in _powers_of_two(limits.max_per_node)]
    groups = [(limits.max_per_node, n) for n in range(2, limits.max_nodes + 1)]
    return [(g, n) for g, n in one_node + groups if model.num_attention_heads % (g * n) == 0]


@dataclass(frozen=True, slots=True)
class Request:
    """What a replica is sized for, the GPU layout aside: ``plan`` and ``suggest`` try layouts
    (and ``suggest`` other quantizations and products) with it."""

    model: ModelFacts
    quantization: str
    product: str | None
    gpu_memory_gib: float
    max_model_len: int | None
    concurrency: int

    @property
    def usable(self) -> float:
        return self.gpu_memory_gib * USABLE_FRACTION

    def build(self, layout: tuple[int, int]) -> GpuPlan:
        """The plan for (GPUs per node, nodes), whether or not it fits."""
        model = self.model
        ctx = min(self.max_model_len or DEFAULT_MAX_MODEL_LEN, model.max_position_embeddings)
        return GpuPlan(
            model.name,
            str(self.quantization),
            self.product,
            self.gpu_memory_gib,
            *layout,
            weight_bytes(model, self.quantization) / GIB,
            kv_cache_bytes(model, ctx, self.concurrency) / GIB,
            OVERHEAD_GIB,
            ctx,
            self.concurrency,
        )


def fit(request: Request, count: int | None, limits: Limits) -> GpuPlan | None:
    """The smallest plan that fits (or the one with ``count`` GPUs), else None."""
    tried = [split_count(count, limits)] if count is not None else layouts(request.model, limits)
    for layout in tried:
        candidate = request.build(layout)
        if candidate.per_gpu_gib <= request.usable:
            return candidate
    return None


def _powers_of_two(limit: int) -> list[int]:
    return [1 << i for i in range(limit.bit_length()) if 1 << i <= limit]


def _too_small(
    p: GpuPlan, model: ModelFacts, usable: float, limits: Limits, count: int | None
) -> str:
    where = p.product or f"{p.gpu_memory_gib:g} GiB GPU"
    need = (p.weights_gib + p.kv_cache_gib) / max(usable - p.overhead_gib, 0.1)
    head = (
        f"{p.model} with quantization {p.quantization} needs {p.weights_gib:.0f} GiB of "
        f"weights + {p.kv_cache_gib:.1f} GiB of KV cache ({p.concurrency} sequences x "
        f"{p.max_model_len} tokens)"
    )
    offered = limits.max_per_node * limits.max_nodes
    if count is not None:
        head += f"; {count} x {where} give {count * usable:.0f} GiB usable"
    elif need > offered and limits.max_nodes == 1:
        head += f": about {need:.1f} x {where}, more than the {offered} GPUs one node offers"
    elif need > offered:
        head += (
            f": about {need:.1f} x {where}, more than the {offered} GPUs that "
            f"{limits.max_nodes} nodes of {limits.max_per_node} offer (resources.gpu.maxNodes)"
        )
    else:
        head += (
            f": about {need:.1f} x {where}, and no layout of at most {limits.max_nodes} "
            f"node(s) of {limits.max_per_node} GPUs that holds it divides its "
            f"{model.num_attention_heads} attention heads (tensor parallelism)"
        )
    alternatives = suggest(p, limits)
    tail = (
        "What would fit: " + "; ".join(alternatives) + "."
        if alternatives
        else f"Nothing in the catalogue fits on {limits.max_nodes} node(s); lower maxModelLen "
        "or maxConcurrentSequences."
    )
    return f"{head}. {tail}"


def suggest(p: GpuPlan, limits: Limits, limit: int = 3) -> list[str]:
    """Other (quantization, product, layout) that fit within ``limits``, smallest total memory
    first."""
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
            request = Request(model, q, gpu.product, gpu.memory_gib, p.max_model_len, p.concurrency)
            found = fit(request, None, limits)
            if found is not None:
                spread = f" ({found.nodes} nodes)" if found.nodes > 1 else ""
                text = f"quantization {q} on {found.gpus} x {gpu.product}{spread}"
                options.append((found.gpus * gpu.memory_gib, text))
        if len(options) >= limit:
            break
    options.sort()
    seen: list[str] = []
    for _, text in options:
        if text not in seen:
            seen.append(text)
    return seen[:limit]
