from __future__ import annotations

from typing import Any

import pytest
from specs import UNSERVABLE, spec

from deepseek_operator.api import parse_spec
from deepseek_operator.catalog import advertised_gpus, find_gpu
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import Target, deployment
from deepseek_operator.sizing import GpuPlan, SizingError

# As GPU feature discovery labels nodes (hack/localcluster's fake nodes carry the same).
L4 = {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.memory": "23034"}
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81559"}
A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.memory": "81920"}
NO_PRODUCT: dict[str, Any] = {"resources.gpu": {"count": "auto"}}


def plan_on(nodes: list[dict[str, str]] | None, **changes: Any) -> GpuPlan:
    parsed = parse_spec(spec(**{**NO_PRODUCT, **changes}))
    gpus = None if nodes is None else advertised_gpus(nodes)
    found = plan_for_spec(parsed, cluster_gpus=gpus)
    assert found is not None
    return found


def pod_of(found: GpuPlan, **changes: Any) -> dict[str, Any]:
    parsed = parse_spec(spec(**{**NO_PRODUCT, **changes}))
    return deployment(Target("r1", "ai", parsed, found))["spec"]["template"]["spec"]


@pytest.mark.parametrize(("changes", "field"), UNSERVABLE, ids=[f for _, f in UNSERVABLE])
def test_unservable_specs_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(SizingError) as info:
        plan_for_spec(parse_spec(spec(**changes)))
    assert info.value.field_path == field


def test_unknown_model_with_a_count_is_served_unsized() -> None:
    changes = {"model.name": "acme/private-model", "resources.gpu": {"count": 2}}
    assert plan_for_spec(parse_spec(spec(**changes))) is None


def test_memory_gib_without_product() -> None:
    result = plan_for_spec(parse_spec(spec(**{"resources.gpu": {"memoryGiB": 24}})))
    assert result is not None and result.product is None and result.gpu_memory_gib == 24
    assert result.node_products == ()


def test_a_named_product_is_pinned() -> None:
    found = plan_for_spec(parse_spec(spec()))
    assert found is not None and found.node_products == ("NVIDIA-A100-SXM4-80GB",)
    assert pod_of(found)["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"


def test_no_product_sizes_for_the_smallest_gpu_the_nodes_advertise_and_pins_none() -> None:
    found = plan_on([H100, L4, H100])
    assert found.product == "NVIDIA-L4" and found.gpus == 2  # 7B int8 on 24 GB L4s
    assert found.reason == "SizedForCluster" and found.node_products == ()
    assert "NVIDIA-H100-80GB-HBM3, NVIDIA-L4" in found.basis
    pod = pod_of(found)
    assert "nvidia.com/gpu.product" not in pod.get("nodeSelector", {})
    assert "affinity" not in pod
    assert found.status().product is None


def test_products_that_cannot_serve_the_model_are_kept_off() -> None:
    # fp8 needs FP8 tensor cores: the H100 has them, the A100 does not.
    found = plan_on([A100, H100], quantization="fp8")
    assert found.product == "NVIDIA-H100-80GB-HBM3" and found.node_products == (found.product,)
    assert "the pods run only on NVIDIA-H100-80GB-HBM3" in found.basis
    assert pod_of(found, quantization="fp8")["nodeSelector"]["nvidia.com/gpu.product"] == (
        "NVIDIA-H100-80GB-HBM3"
    )


def test_several_fitting_products_of_many_are_required_by_affinity() -> None:
    l40s = {"nvidia.com/gpu.product": "NVIDIA-L40S", "nvidia.com/gpu.memory": "46068"}
    model = {"model.name": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "quantization": "bf16"}
    found = plan_on([L4, l40s, H100], **model)  # 70B bf16: too big for eight L4s
    assert found.product == "NVIDIA-L40S"
    assert found.node_products == ("NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S")
    terms = pod_of(found, **model)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {
                    "key": "nvidia.com/gpu.product",
                    "operator": "In",
                    "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S"],
                }
            ]
        }
    ]


def test_a_product_that_serves_on_one_node_is_preferred_to_a_group_of_smaller_ones() -> None:
    h200 = {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.memory": "143771"}
    model = {"model.name": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "quantization": "bf16"}
    found = plan_on([L4, h200], **model)  # 70B bf16: 8x2 L4s, or 2 H200s
    assert (found.product, found.gpus, found.nodes) == ("NVIDIA-H200", 2, 1)
    assert found.node_products == ("NVIDIA-H200",)  # kept off the L4 nodes
    assert "that can serve it on one node" in found.basis


def test_a_cluster_whose_gpus_serve_only_in_groups_gets_a_group() -> None:
    model = {"model.name": "deepseek-ai/DeepSeek-R1", "quantization": "bf16"}
    found = plan_on([H100, A100], **model)
    assert (found.gpus_per_node, found.nodes) == (8, 4)
    assert found.node_products == () and "on one node" not in found.basis


def test_an_unknown_model_given_more_gpus_than_a_node_has_fills_whole_nodes() -> None:
    changes = {"model.name": "acme/private-model", "resources.gpu": {"count": 16}}
    parsed = parse_spec(spec(**changes))
    assert plan_for_spec(parsed) is None
    assert Target("r1", "ai", parsed).layout == (8, 2)
    changes["resources.gpu"] = {"count": 12}
    with pytest.raises(SizingError, match="multiple of 8") as info:
        plan_for_spec(parse_spec(spec(**changes)))
    assert info.value.field_path == "spec.resources.gpu.count"


def test_no_gpu_the_cluster_offers_can_serve_it() -> None:
    with pytest.raises(SizingError, match="none of the GPUs this cluster's nodes advertise"):
        plan_on([L4], **{"model.name": "deepseek-ai/DeepSeek-R1", "quantization": "bf16"})


@pytest.mark.parametrize("nodes", [[], None], ids=["no-gpu-labels", "nodes-unreadable"])
def test_nothing_advertised_states_the_assumption_and_pins_nothing(
    nodes: list[dict[str, str]] | None,
) -> None:
    found = plan_on(nodes)
    assert found.reason == "AssumedGpu" and found.product is None
    assert found.node_products == () and "assumes 80 GiB GPUs" in found.basis
    assert "nvidia.com/gpu.product" not in pod_of(found).get("nodeSelector", {})


def test_advertised_gpus_keep_the_nodes_spelling_and_read_unknown_memory() -> None:
    pcie = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB-PCIe"}  # an alias in the catalogue
    t4 = {"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.memory": "15360"}
    mystery = {"nvidia.com/gpu.product": "Acme-X1"}  # no memory label: cannot be sized for
    gpus = {g.product: g for g in advertised_gpus([pcie, t4, mystery, t4])}
    assert set(gpus) == {"NVIDIA-A100-80GB-PCIe", "Tesla-T4"}
    a100 = find_gpu("NVIDIA-A100-SXM4-80GB")
    assert a100 is not None and gpus["NVIDIA-A100-80GB-PCIe"].memory_mib == a100.memory_mib
    assert gpus["Tesla-T4"].memory_gib == 15 and not gpus["Tesla-T4"].supports_fp8
