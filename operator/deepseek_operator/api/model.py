"""The model to serve and where its weights are: name, format, source, integrity, precision."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from deepseek_operator.api.schema import DNS_SUBDOMAIN, RELATIVE_PATH, Rule, Schema, matching


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
    path: str = matching(
        "", RELATIVE_PATH, 1024, "Directory (or GGUF file's directory) inside the volume."
    )


class HostPathSource(Schema):
    """Weights on every GPU node's local disk (pre-seeded), mounted read-only."""

    path: str = Field(
        description="Absolute directory on the node.", pattern=r"^/.*", max_length=1024
    )


class ImageSource(Schema):
    """Weights baked into the runtime image."""

    path: str = matching("/models", r"^/.*", 1024, "Absolute directory inside the image.")


class ModelSource(Schema):
    """Where the weights are. Exactly one of pvc, hostPath or image."""

    rules = (
        Rule(
            "[has(self.pvc), has(self.hostPath), has(self.image)].filter(x, x).size() == 1",
            "exactly one of pvc, hostPath or image must be set",
            lambda s: [s.pvc, s.host_path, s.image].count(None) == 2,
        ),
    )

    pvc: PvcSource | None = Field(None, description="Weights on a PersistentVolumeClaim.")
    host_path: HostPathSource | None = Field(None, description="Weights on the node's disk.")
    image: ImageSource | None = Field(None, description="Weights baked into the runtime image.")


class KeyRef(Schema):
    name: str = Field(
        description="Object name in the same namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    key: str = Field("manifest.json", description="Key holding the manifest.", max_length=253)


class Integrity(Schema):
    """A pinned SHA-256 manifest of the weights (``deepseek-runtime manifest DIR``), verified by
    an init container before the runtime starts."""

    rules = (
        Rule(
            "has(self.configMap) != has(self.secret)",
            "set exactly one of configMap or secret",
            lambda s: (s.config_map is None) != (s.secret is None),
        ),
    )

    config_map: KeyRef | None = Field(None, description="ConfigMap holding the manifest.")
    secret: KeyRef | None = Field(None, description="Secret holding the manifest.")


class ModelSpec(Schema):
    """The model to serve."""

    rules = (
        Rule(
            "self.format != 'gguf' || has(self.ggufFile)",
            "ggufFile is required when format is gguf",
            lambda s: s.format != ModelFormat.gguf or s.gguf_file is not None,
        ),
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
    gguf_file: str | None = matching(
        None, r"^[^/]+\.gguf$", 255, "GGUF file name inside the source directory."
    )
    revision: str | None = matching(
        None,
        r"^[A-Za-z0-9._-]+$",
        64,
        "Revision the weights were taken from; recorded in labels and status for audit.",
    )
    source: ModelSource = Field(description="Where the weights are (offline: nothing downloads).")
    integrity: Integrity | None = Field(
        None, description="SHA-256 manifest to verify before serving."
    )
