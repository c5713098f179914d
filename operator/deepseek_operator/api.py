"""The DeepSeekDeployment API: pydantic models of spec and status, the single source of truth.

The CRD (crd.py) is generated from these models, so every ``description`` here is what
``kubectl explain dsd.spec...`` prints, and every validator here has a twin in the schema or a
CEL rule where the API server can check it too. Field names are camelCase on the wire.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "deepseek.ai"
VERSION = "v1alpha1"
KIND = "DeepSeekDeployment"
PLURAL = "deepseekdeployments"
SINGULAR = "deepseekdeployment"
SHORT_NAMES = ["dsd"]
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
RELATIVE_PATH = r"^$|^[^/].*$"


class Schema(BaseModel):
    """Base: camelCase on the wire, unknown fields refused (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL cross-field rules (``x-kubernetes-validations``) the CRD carries for this object."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class Quantization(StrEnum):
    none = "none"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"
    awq = "awq"
    gptq = "gptq"


class ModelFormat(StrEnum):
    hf = "hf"
    gguf = "gguf"


# --- model -------------------------------------------------------------------------------


class PvcSource(Schema):
    """Weights on a PersistentVolumeClaim, mounted read-only."""

    claim_name: str = Field(
        description="Name of the PersistentVolumeClaim in the same namespace.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    path: str = Field(
        "",
        description="Directory (or GGUF file's directory) inside the volume.",
        pattern=RELATIVE_PATH,
        max_length=1024,
    )


class HostPathSource(Schema):
    """Weights on every GPU node's local disk (pre-seeded), mounted read-only."""

    path: str = Field(
        description="Absolute directory on the node.", pattern=r"^/.*", max_length=1024
    )


class ImageSource(Schema):
    """Weights baked into the runtime image."""

    path: str = Field(
        "/models",
        description="Absolute directory inside the image.",
        pattern=r"^/.*",
        max_length=1024,
    )


class ModelSource(Schema):
    """Where the weights are. Exactly one of pvc, hostPath or image."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "[has(self.pvc), has(self.hostPath), has(self.image)].filter(x, x).size() == 1",
                "exactly one of pvc, hostPath or image must be set",
            ),
        )
    )

    pvc: PvcSource | None = Field(None, description="Weights on a PersistentVolumeClaim.")
    host_path: HostPathSource | None = Field(None, description="Weights on the node's disk.")
    image: ImageSource | None = Field(None, description="Weights baked into the runtime image.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if sum(x is not None for x in (self.pvc, self.host_path, self.image)) != 1:
            raise ValueError("exactly one of pvc, hostPath or image must be set")
        return self


class KeyRef(Schema):
    name: str = Field(
        description="Object name in the same namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    key: str = Field("manifest.json", description="Key holding the manifest.", max_length=253)


class Integrity(Schema):
    """A pinned SHA-256 manifest of the weights (``deepseek-runtime manifest DIR``), verified by
    an init container before the runtime starts."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.configMap) != has(self.secret)", "set exactly one of configMap or secret"),
        )
    )

    config_map: KeyRef | None = Field(None, description="ConfigMap holding the manifest.")
    secret: KeyRef | None = Field(None, description="Secret holding the manifest.")

    @model_validator(mode="after")
    def _one(self) -> Integrity:
        if (self.config_map is None) == (self.secret is None):
            raise ValueError("set exactly one of configMap or secret")
        return self


class ModelSpec(Schema):
    """The model to serve."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.format != 'gguf' || has(self.ggufFile)",
                "ggufFile is required when format is gguf",
            ),
        )
    )

    name: str = Field(
        description="Model id, e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-7B. Sizing looks it up in "
        "the operator's catalogue; it is also the name the OpenAI API serves.",
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
    )
    format: ModelFormat = Field(
        ModelFormat.hf, description="hf (a save_pretrained directory) or gguf (one GGUF file)."
    )
    gguf_file: str | None = Field(
        None,
        description="GGUF file name inside the source directory.",
        pattern=r"^[^/]+\.gguf$",
        max_length=255,
    )
    revision: str | None = Field(
        None,
        description="Revision the weights were taken from; "
        "recorded in labels and status for audit.",
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    source: ModelSource = Field(description="Where the weights are (offline: nothing downloads).")
    integrity: Integrity | None = Field(
        None, description="SHA-256 manifest to verify before serving."
    )

    @model_validator(mode="after")
    def _gguf(self) -> ModelSpec:
        if self.format == ModelFormat.gguf and not self.gguf_file:
            raise ValueError("ggufFile is required when format is gguf")
        return self


# --- runtime, resources, scaling ------------------------------------------------------------


class RuntimeSpec(Schema):
    """How the runtime in each pod batches and queues."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.maxBatchSize) || self.maxBatchSize <= self.maxConcurrentSequences",
                "maxBatchSize must not exceed maxConcurrentSequences",
            ),
        )
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
    max_batch_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Most sequences in one forward step. Default: maxConcurrentSequences.",
    )
    max_queue_delay_ms: int = Field(
        5,
        ge=0,
        le=10_000,
        description="How long the scheduler may wait to fill a batch, in milliseconds.",
    )
    max_model_len: int | None = Field(
        None,
        ge=128,
        le=1_048_576,
        description="Context length (prompt + output) per sequence. Default: min(model's, 8192).",
    )
    max_concurrent_sequences: int = Field(
        32,
        ge=1,
        le=4096,
        description="Sequences running at once; sizing reserves KV cache for all of them.",
    )
    max_queue_length: int = Field(
        256, ge=1, le=100_000, description="Waiting requests before the runtime answers 429."
    )
    extra_args: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list,
        description="Extra arguments for `deepseek-runtime serve`.",
        max_length=64,
    )

    @model_validator(mode="after")
    def _batch(self) -> RuntimeSpec:
        if self.max_batch_size and self.max_batch_size > self.max_concurrent_sequences:
            raise ValueError("maxBatchSize must not exceed maxConcurrentSequences")
        return self


class GpuSpec(Schema):
    """GPUs per replica."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("!(has(self.product) && has(self.memoryGiB))", "set product or memoryGiB, not both"),
            (
                "type(self.count) == int ? self.count >= 1 : self.count == 'auto'",
                "count must be 'auto' or a positive integer",
            ),
        )
    )

    count: int | Literal["auto"] = Field(
        "auto",
        description="'auto' (sized from the model, its "
        "quantization, context and concurrency) or a number.",
    )
    resource_name: str = Field(
        "nvidia.com/gpu",
        description="Extended resource to request.",
        pattern=r"^[a-z0-9.-]+/[a-z0-9._-]+$",
        max_length=253,
    )
    product: str | None = Field(
        None,
        description="GPU product as in the nvidia.com/gpu.product "
        "node label, e.g. NVIDIA-H100-80GB-HBM3.",
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
    )
    memory_gi_b: float | None = Field(
        None,
        alias="memoryGiB",
        gt=0,
        le=1024,
        description="Memory per GPU in GiB, when no product is named.",
    )
    max_per_node: int = Field(8, ge=1, le=64, description="Most GPUs one node offers.")

    @model_validator(mode="after")
    def _product_or_memory(self) -> GpuSpec:
        if self.product is not None and self.memory_gi_b is not None:
            raise ValueError("set product or memoryGiB, not both")
        if isinstance(self.count, int) and self.count < 1:
            raise ValueError("count must be 'auto' or a positive integer")
        return self


class ResourcesSpec(Schema):
    gpu: GpuSpec = Field(default_factory=GpuSpec, description="GPUs per replica.")
    cpu: str = Field("4", description="CPU request per replica.", pattern=QUANTITY)
    memory: str = Field(
        "32Gi", description="Memory request and limit per replica.", pattern=QUANTITY
    )


class AutoscalingMode(StrEnum):
    hpa = "hpa"
    keda = "keda"
    none = "none"


class AutoscalingSpec(Schema):
    """Scale on the runtime's queue gauge, deepseek_requests_waiting."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
        )
    )

    mode: AutoscalingMode = Field(
        AutoscalingMode.hpa,
        description="hpa (needs prometheus-adapter), keda (a ScaledObject) or none.",
    )
    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest replicas.")
    max_replicas: int = Field(1, ge=1, le=1000, description="Most replicas.")
    target_queue_length: int = Field(
        8, ge=1, le=10_000, description="Waiting requests per pod the autoscaler aims for."
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long a lower recommendation must hold before scaling down.",
    )
    prometheus_address: str = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus that KEDA queries (mode keda).",
        max_length=512,
        pattern=r"^https?://.+",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


# --- scheduling, service, security, monitoring --------------------------------------------


class Toleration(Schema):
    key: str | None = Field(None, description="Taint key.", max_length=316)
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty means all."
    )
    toleration_seconds: int | None = Field(None, ge=0, description="For NoExecute taints.")


class SchedulingSpec(Schema):
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Extra node labels to require.", max_length=32
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Extra tolerations (nvidia.com/gpu is always tolerated).",
        max_length=32,
    )
    affinity: dict[str, Any] | None = Field(
        None,
        description="Pod affinity, as in a PodSpec.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: str | None = Field(
        None, description="PriorityClass for the pods.", pattern=DNS_SUBDOMAIN, max_length=253
    )


class ServiceSpec(Schema):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Service type."
    )
    port: int = Field(8080, ge=1, le=65535, description="Port of the OpenAI-compatible API.")


class LabelSelector(Schema):
    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels to match.")


class Peer(Schema):
    """Who may connect: pods matching podSelector in namespaces matching namespaceSelector."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.namespaceSelector) || has(self.podSelector)",
                "set namespaceSelector, podSelector or both",
            ),
        )
    )

    namespace_selector: LabelSelector | None = Field(None, description="Namespaces allowed.")
    pod_selector: LabelSelector | None = Field(None, description="Pods allowed.")

    @model_validator(mode="after")
    def _some(self) -> Peer:
        if self.namespace_selector is None and self.pod_selector is None:
            raise ValueError("set namespaceSelector, podSelector or both")
        return self


class SecretRef(Schema):
    secret_name: str = Field(
        description="Secret in the same namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )


class SecuritySpec(Schema):
    api_keys: SecretRef | None = Field(
        None,
        description="Secret with key api-keys.yaml: a list "
        "of {name, role, sha256}. Without it the API is open to "
        "whoever the NetworkPolicy lets in.",
    )
    tls: SecretRef | None = Field(
        None, description="kubernetes.io/tls Secret: the runtime serves HTTPS with it."
    )
    allow_from: list[Peer] = Field(
        default_factory=list,
        description="Who may connect. Empty means pods in the same namespace only.",
        max_length=32,
    )
    allow_egress_cidrs: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        description="Egress allowed besides DNS (default: none).",
        max_length=16,
    )


class MonitoringSpec(Schema):
    service_monitor: bool = Field(False, description="Create a prometheus-operator ServiceMonitor.")
    interval: str = Field("30s", description="Scrape interval.", pattern=r"^[0-9]+(s|m)$")
    namespace: str = Field(
        "monitoring",
        description="Namespace whose Prometheus may scrape the metrics port.",
        pattern=DNS_LABEL,
        max_length=63,
    )


# --- the resource ----------------------------------------------------------------------------


class DeepSeekDeploymentSpec(Schema):
    """A private, GPU-sized DeepSeek deployment."""

    model: ModelSpec = Field(description="The model and where its weights are.")
    quantization: Quantization = Field(
        Quantization.none,
        description="Weight precision: none "
        "(the checkpoint's own), bf16, fp16, fp8, int8, int4, awq "
        "or gptq.",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="Runtime settings.")
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="GPUs, CPU and memory per replica."
    )
    replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description="Replicas when autoscaling is off; `kubectl scale dsd/NAME` sets it.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        None, description="Scale on queue length. Absent: fixed replicas."
    )
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec, description="Where pods may run."
    )
    service: ServiceSpec = Field(
        default_factory=ServiceSpec, description="How the API is exposed in the cluster."
    )
    security: SecuritySpec = Field(
        default_factory=SecuritySpec, description="Keys, TLS and who may connect."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prometheus integration."
    )

    @model_validator(mode="after")
    def _cross(self) -> DeepSeekDeploymentSpec:
        if self.model.format == ModelFormat.gguf and self.quantization != Quantization.none:
            raise ValueError("quantization must be none for gguf models (GGUF carries its own)")
        return self

    @property
    def autoscaling_mode(self) -> AutoscalingMode:
        return AutoscalingMode(self.autoscaling.mode) if self.autoscaling else AutoscalingMode.none


# --- status ----------------------------------------------------------------------------------


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

    gpus_per_replica: int = Field(description="GPUs each replica requests.")
    tensor_parallel: int = Field(description="Tensor-parallel degree (a power of two).")
    product: str | None = Field(None, description="GPU product scheduled onto.")
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
    replicas: int | None = Field(None, description="Pods the Deployment has.")
    ready_replicas: int | None = Field(None, description="Pods ready to serve.")
    ready: str | None = Field(None, description="ready/desired, for kubectl get.")
    selector: str | None = Field(
        None, description="Label selector of the pods (scale subresource)."
    )
    endpoint: str | None = Field(None, description="In-cluster URL of the OpenAI-compatible API.")
    gpu_plan: GpuPlanStatus | None = Field(None, description="The GPU plan.")
    gpus: int | None = Field(None, description="GPUs per replica, for kubectl get.")
    observed_generation: int | None = Field(None, description="Last generation reconciled.")


def parse_spec(spec: dict[str, Any]) -> DeepSeekDeploymentSpec:
    """Validate a CR's spec; raises pydantic.ValidationError naming the field."""
    return DeepSeekDeploymentSpec.model_validate(spec)


def error_fields(exc: Exception) -> list[str]:
    """``spec.a.b: reason`` lines from a pydantic ValidationError, in the user's field names."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return [str(exc)]
    lines = []
    for err in exc.errors():
        loc = ".".join(
            ["spec", *(str(p) for p in err["loc"] if not str(p).startswith("function-"))]
        )
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines
