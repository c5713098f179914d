"""Which GPU a DeepSeekDeployment is sized for, and where its pods may then run.

The product the user names, else the memory the user names, else the GPUs the cluster's nodes
advertise (their ``nvidia.com/gpu.product`` labels, read by the reconcile layer), else a stated
assumption. A product is only pinned when the user named it, or when only some of the
cluster's products can serve the model; the GpuPlanned condition says which and why. Products
that serve the model on one node are preferred to products that would need a group of nodes.
"""

from __future__ import annotations

from dataclasses import replace

from deepseek_operator.api import DeepSeekDeploymentSpec
from deepseek_operator.catalog import (
    GPUS,
    PRODUCT_LABEL,
    GpuProduct,
    ModelFacts,
    find_gpu,
    find_model,
)
from deepseek_operator.sizing import (
    GpuPlan,
    Limits,
    SizingError,
    check_product,
    plan,
    split_count,
)

ASSUMED = GPUS["nvidia-h100-80gb-hbm3"]  # the most common datacenter GPU, when nothing says


def plan_for_spec(
    spec: DeepSeekDeploymentSpec,
    model: ModelFacts | None = None,
    cluster_gpus: list[GpuProduct] | None = None,
) -> GpuPlan | None:
    """The plan for a CR; None when the model is unknown and the user gave the count.
    ``cluster_gpus`` are the GPUs the cluster's nodes advertise (None: the nodes could not be
    read)."""
    facts = model or find_model(spec.model.name)
    gpu_spec = spec.resources.gpu
    count = None if gpu_spec.count == "auto" else int(gpu_spec.count)
    product = find_gpu(gpu_spec.product) if gpu_spec.product else None
    if gpu_spec.product and product is None:
        known = ", ".join(g.product for g in GPUS.values())
        raise SizingError(
            f"unknown GPU product {gpu_spec.product!r}; known products: {known}; "
            "or set memoryGiB instead",
            "spec.resources.gpu.product",
        )
    if facts is None:
        if count is None:
            raise SizingError(
                f"model {spec.model.name!r} is not in the catalogue, so its GPUs "
                "cannot be sized: set resources.gpu.count",
                "spec.resources.gpu.count",
            )
        split_count(count, Limits.of(gpu_spec))  # a count that spans nodes must fill them
        return None
    if product is not None:
        check_product(product, facts, spec.quantization)
        named = _plan(spec, facts, product.memory_gib, product.product)
        return replace(named, node_products=(product.product,))
    if gpu_spec.memory_gi_b is not None:
        return _plan(spec, facts, gpu_spec.memory_gi_b, None)
    if cluster_gpus:
        return _plan_for_cluster(spec, facts, cluster_gpus)
    why = (
        f"No node advertises {PRODUCT_LABEL}"
        if cluster_gpus is not None
        else "The operator may not list the nodes"
    )
    return replace(
        _plan(spec, facts, ASSUMED.memory_gib, None),
        reason="AssumedGpu",
        basis=f"{why}, so this assumes {ASSUMED.memory_gib:.0f} GiB GPUs ({ASSUMED.product}) "
        "and pins no product; set resources.gpu.product or memoryGiB to size for yours",
    )


def _plan_for_cluster(
    spec: DeepSeekDeploymentSpec, facts: ModelFacts, offered: list[GpuProduct]
) -> GpuPlan:
    """Sized for the smallest advertised GPU that can serve the model, so that any node with
    one of the fitting products will do; the pods are kept off the products that cannot."""
    products = sorted({g.product for g in offered})
    fitting: list[tuple[GpuProduct, GpuPlan]] = []
    refusals: list[SizingError] = []
    for gpu in sorted({g.product: g for g in offered}.values(), key=lambda g: g.memory_mib):
        try:
            check_product(gpu, facts, spec.quantization)
            fitting.append((gpu, _plan(spec, facts, gpu.memory_gib, gpu.product)))
        except SizingError as exc:
            refusals.append(exc)
    if not fitting:
        last = refusals[-1]  # the largest GPU's refusal says what would fit instead
        raise SizingError(
            f"none of the GPUs this cluster's nodes advertise ({', '.join(products)}) can "
            f"serve it: {last}",
            last.field_path,
        )
    one_node = [(g, p) for g, p in fitting if p.nodes == 1]
    # A group of nodes only when no product serves the model on one: a model sized for a group
    # of small GPUs would otherwise take whole nodes of the large ones.
    where = " on one node" if one_node and len(one_node) < len(fitting) else ""
    fitting = one_node or fitting
    smallest, chosen = fitting[0]
    allowed = tuple(sorted(g.product for g, _ in fitting))
    basis = (
        f"Sized for {smallest.product}, the smallest GPU this cluster's nodes advertise "
        f"({', '.join(products)}) that can serve it{where}"
    )
    if allowed != tuple(products):
        basis += f"; the pods run only on {', '.join(allowed)}"
    return replace(
        chosen,
        node_products=allowed if allowed != tuple(products) else (),
        basis=basis,
        reason="SizedForCluster",
    )


def _plan(
    spec: DeepSeekDeploymentSpec,
    facts: ModelFacts,
    memory_gib: float,
    product: str | None,
) -> GpuPlan:
    gpu_spec = spec.resources.gpu
    return plan(
        facts,
        spec.quantization,
        gpu_memory_gib=memory_gib,
        product=product,
        max_model_len=spec.runtime.max_model_len,
        concurrency=spec.runtime.max_concurrent_sequences,
        count=None if gpu_spec.count == "auto" else int(gpu_spec.count),
        max_per_node=gpu_spec.max_per_node,
        max_nodes=gpu_spec.max_nodes,
    )
