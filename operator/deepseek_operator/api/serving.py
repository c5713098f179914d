"""How each replica runs and how many there are: runtime batching, GPUs and memory, autoscaling."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from deepseek_operator.api.schema import QUANTITY, Rule, Schema, bounded, matching


class RuntimeSpec(Schema):
    """How the runtime in each pod batches and queues."""

    rules = (
        Rule(
            "!has(self.maxBatchSize) || self.maxBatchSize <= self.maxConcurrentSequences",
            "maxBatchSize must not exceed maxConcurrentSequences",
            lambda s: s.max_batch_size is None or s.max_batch_size <= s.max_concurrent_sequences,
        ),
    )

    image: str = Field(
        "deepseek-runtime:0.1.0",
        description="Runtime container image.",
        min_length=1,
        max_length=512,
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )
    max_batch_size: int | None = bounded(
        None, 1, 1024, "Most sequences in one forward step. Default: maxConcurrentSequences."
    )
    max_queue_delay_ms: int = bounded(
        5, 0, 10_000, "How long the scheduler may wait to fill a batch, in milliseconds."
    )
    max_model_len: int | None = bounded(
        None,
        128,
        1_048_576,
        "Context length (prompt + output) per sequence. Default: min(model's, 8192).",
    )
    max_concurrent_sequences: int = bounded(
        32, 1, 4096, "Sequences running at once; sizing reserves KV cache for all of them."
    )
    max_queue_length: int = bounded(
        256, 1, 100_000, "Waiting requests before the runtime answers 429."
    )
    extra_args: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list,
        description="Extra arguments for `deepseek-runtime serve`.",
        max_length=64,
    )


DEFAULT_MAX_NODES = 8


class GpuSpec(Schema):
    """GPUs per replica: on one node, or, for a model larger than one node, on a group of nodes
    (a LeaderWorkerSet) whose every pod takes all maxPerNode GPUs of its node."""

    rules = (
        Rule(
            "!(has(self.product) && has(self.memoryGiB))",
            "set product or memoryGiB, not both",
            lambda s: s.product is None or s.memory_gi_b is None,
        ),
        Rule(
            "type(self.count) == int ? self.count >= 1 : self.count == 'auto'",
            "count must be 'auto' or a positive integer",
            lambda s: s.count == "auto" or s.count >= 1,
        ),
    )

    count: int | Literal["auto"] = Field(
        "auto",
        description="'auto' (sized from the model, its "
        "quantization, context and concurrency) or a number of GPUs per replica; more than "
        "maxPerNode spans several nodes and must then be a multiple of it.",
    )
    resource_name: str = matching(
        "nvidia.com/gpu", r"^[a-z0-9.-]+/[a-z0-9._-]+$", 253, "Extended resource to request."
    )
    product: str | None = matching(
        None,
        r"^[A-Za-z0-9._-]+$",
        128,
        "GPU product as in the nvidia.com/gpu.product node label, e.g. NVIDIA-H100-80GB-HBM3; "
        "the pods are pinned to it. With neither product nor memoryGiB, the model is sized for "
        "the GPUs the cluster's nodes advertise.",
    )
    memory_gi_b: float | None = Field(
        None,
        alias="memoryGiB",
        gt=0,
        le=1024,
        description="Memory per GPU in GiB, when no product is named.",
    )
    max_per_node: int = bounded(8, 1, 64, "Most GPUs one node offers.")
    max_nodes: int = bounded(
        DEFAULT_MAX_NODES,
        1,
        64,
        "Most nodes one replica may span. A model larger than one node runs as a "
        "LeaderWorkerSet group (sigs.k8s.io/lws) of up to this many pods, each taking all "
        "maxPerNode GPUs of its node; 1 refuses plans larger than one node.",
    )


class ResourcesSpec(Schema):
    gpu: GpuSpec = Field(default_factory=GpuSpec, description="GPUs per replica.")
    cpu: str = Field("4", description="CPU request per replica.", pattern=QUANTITY)
    memory: str = Field(
        "32Gi", description="Memory request and limit per replica.", pattern=QUANTITY
    )


class RolloutSpec(Schema):
    """How a spec change replaces the pods: the Deployment's (or LeaderWorkerSet's) rolling
    update, in replicas (groups of nodes for a LeaderWorkerSet)."""

    rules = (
        Rule(
            "self.maxSurge + self.maxUnavailable >= 1",
            "maxSurge and maxUnavailable must not both be 0 (the rollout could never move)",
            lambda s: s.max_surge + s.max_unavailable >= 1,
        ),
    )

    max_surge: int = bounded(
        1,
        0,
        100,
        "Extra replicas started during a rollout before old ones stop: 1 keeps serving without "
        "a gap, and needs free GPUs for one more replica (until they are free the rollout "
        "waits, the old pods serve, and Ready says why). 0 replaces pods in place.",
    )
    max_unavailable: int = bounded(
        0,
        0,
        100,
        "Replicas that may be down during a rollout. Set 1 with maxSurge 0 where no spare GPUs "
        "exist: each pod is stopped before its replacement starts (a single replica then has "
        "a gap).",
    )


class AutoscalingMode(StrEnum):
    hpa = "hpa"
    keda = "keda"
    none = "none"


class AutoscalingSpec(Schema):
    """Scale on the runtime's queue gauge, deepseek_requests_waiting."""

    rules = (
        Rule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            lambda s: s.min_replicas <= s.max_replicas,
        ),
    )

    mode: AutoscalingMode = Field(
        AutoscalingMode.hpa,
        description="hpa (needs prometheus-adapter), keda (a ScaledObject) or none.",
    )
    min_replicas: int = bounded(1, 1, 1000, "Fewest replicas.")
    max_replicas: int = bounded(1, 1, 1000, "Most replicas.")
    target_queue_length: int = bounded(
        8, 1, 10_000, "Waiting requests per pod the autoscaler aims for."
    )
    scale_down_stabilization_seconds: int = bounded(
        300, 0, 3600, "How long a lower recommendation must hold before scaling down."
    )
    prometheus_address: str = matching(
        "http://prometheus-operated.monitoring.svc:9090",
        r"^https?://.+",
        512,
        "Prometheus that KEDA queries (mode keda).",
    )
