"""What the operator reports back: phase, conditions, replicas, the GPU plan."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from deepseek_operator.api.schema import Schema


class Condition(Schema):
    """A metav1.Condition."""

    model_config = ConfigDict(frozen=False)

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: str | None = Field(None, description="When status last changed.")
    observed_generation: int | None = Field(None, description="Generation this was computed from.")


class GpuPlanStatus(Schema):
    """What sizing decided, per replica."""

    gpus_per_replica: int = Field(description="GPUs each replica requests, every node's.")
    gpus_per_node: int | None = Field(None, description="GPUs each pod requests on its node.")
    nodes: int | None = Field(
        None, description="Nodes per replica: more than 1 is a LeaderWorkerSet group."
    )
    tensor_parallel: int = Field(
        description="Tensor-parallel degree across the replica's GPUs (it divides the attention "
        "heads)."
    )
    product: str | None = Field(
        None, description="GPU product the pods are pinned to (absent: more than one, or any)."
    )
    gpu_memory_gi_b: float | None = Field(None, alias="gpuMemoryGiB", description="Memory per GPU.")
    weights_gi_b: float | None = Field(None, alias="weightsGiB", description="Weights.")
    kv_cache_gi_b: float | None = Field(None, alias="kvCacheGiB", description="KV cache reserved.")
    overhead_gi_b: float | None = Field(None, alias="overheadGiB", description="Runtime overhead.")
    per_gpu_gi_b: float | None = Field(None, alias="perGpuGiB", description="Needed per GPU.")
    max_model_len: int | None = Field(None, description="Context length planned for.")
    summary: str = Field("", description="One line, in words.")


class DeepSeekDeploymentStatus(Schema):
    model_config = ConfigDict(frozen=False)

    phase: Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"] | None = Field(
        None, description="Pending, Progressing, Ready, Degraded or Failed."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Standard conditions.")
    replicas: int | None = Field(
        None, description="Pods the Deployment has, or groups the LeaderWorkerSet has."
    )
    ready_replicas: int | None = Field(None, description="Pods (or groups) ready to serve.")
    ready: str | None = Field(None, description="ready/desired, for kubectl get.")
    selector: str | None = Field(
        None,
        description="Label selector of the pods that serve, one per replica (a group's leader "
        "only); the scale subresource's.",
    )
    endpoint: str | None = Field(None, description="In-cluster URL of the OpenAI-compatible API.")
    gpu_plan: GpuPlanStatus | None = Field(None, description="The GPU plan.")
    gpus: int | None = Field(None, description="GPUs per pod, for kubectl get.")
    nodes: int | None = Field(None, description="Nodes (pods) per replica, for kubectl get.")
    observed_generation: int | None = Field(None, description="Last generation reconciled.")
