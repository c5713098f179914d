"""Typed server settings, loaded and validated once.

Sources, highest precedence first: command-line flags, `DEEPSEEK_RUNTIME_<FIELD>` environment
variables (the operator mounts a ConfigMap as env), a YAML `--config FILE` (or
`DEEPSEEK_RUNTIME_CONFIG`) with the same keys (dashes or underscores), then the defaults below.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "DEEPSEEK_RUNTIME_"


class SettingsError(Exception):
    """Settings that cannot work together or do not parse; the message names the key."""


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # model and engine
    model: str | None = None  # HF directory or GGUF directory; None = the bundled SmolLM2
    gguf_file: str | None = None
    dtype: str = "auto"
    quantization: str = "none"
    served_model_name: str | None = None
    max_num_seqs: int = Field(32, ge=1)
    max_queue: int = Field(256, ge=1)
    max_model_len: int | None = Field(None, ge=16)
    max_num_batched_tokens: int = Field(4096, ge=1)  # prompt tokens in one prefill step
    kv_cache_tokens: int | None = Field(None, ge=1)  # None: max_num_seqs * max_model_len
    torch_threads: int | None = Field(None, ge=1)  # None: all cores but one
    reasoning: Literal["auto", "on", "off"] = "auto"
    # network
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    triton: bool = True
    triton_http_port: int = Field(8000, ge=0, le=65535)
    triton_grpc_port: int = Field(8001, ge=0, le=65535)
    triton_metrics_port: int = Field(8002, ge=0, le=65535)
    # Streams wake their consumer on the first token, then every N tokens: measured +28% tok/s
    # at 32 clients on 2 cores against waking on every token (bench/results/runtime.md).
    stream_interval_tokens: int = Field(4, ge=1, le=256)
    # After its first token, Triton's stream sends one chunk per this many ms (+42% at 32).
    triton_chunk_ms: float = Field(200.0, ge=0)
    # Triton's dynamic batcher for the non-streaming model: most requests merged into one
    # execute() call (default: max_num_seqs) and how long it waits to fill that batch.
    triton_max_batch_size: int | None = Field(None, ge=1, le=1024)
    triton_max_queue_delay_ms: float = Field(2.0, ge=0, le=10_000)
    max_body_bytes: int = Field(4 << 20, ge=1024)
    drain_timeout_s: float = Field(30.0, ge=0)
    # security
    api_keys: Path | None = None
    allow_unauthenticated: bool = False
    metrics_auth: bool = False
    rate_limit_rps: float = Field(10.0, ge=0)  # per key; 0 disables
    rate_limit_burst: float = Field(20.0, ge=1)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    verify_manifest: Path | None = None
    audit_log: Path | None = None
    audit_include_text: bool = False
    audit_max_bytes: int = Field(100 << 20, ge=1024)
    audit_backups: int = Field(5, ge=0)
    output_filter: Path | None = None
    output_filter_holdback: int = Field(64, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.metrics_auth and self.api_keys is None:
            raise ValueError("metrics_auth needs api_keys")
        return self

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def unsafe_binding(self) -> str | None:
        """Why these settings must not start, or None: no keys beyond loopback is refused."""
        if self.api_keys is None and not self.loopback_only and not self.allow_unauthenticated:
            return (
                f"refusing to listen on {self.host} without API keys: pass --api-keys FILE, "
                "or --allow-unauthenticated if a network policy already restricts access"
            )
        return None


FIELDS = frozenset(ServerSettings.model_fields)


def _normalize(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_").lower()
        if name not in FIELDS:
            raise SettingsError(f"{source}: unknown setting {key!r}")
        out[name] = value
    return out


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values = {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    values.pop("CONFIG", None)
    # Empty env vars are how a ConfigMap says "unset": leave the default in place.
    return _normalize({k: v for k, v in values.items() if v != ""}, "environment")


def from_file(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: expected a YAML mapping of settings")
    return _normalize(doc, str(path))


def load_settings(
    cli: Mapping[str, Any], env: Mapping[str, str], config_file: Path | None = None
) -> ServerSettings:
    config_file = config_file or (
        Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None
    )
    merged = from_file(config_file) if config_file else {}
    merged |= from_env(env)
    merged |= _normalize(cli, "command line")
    try:
        return ServerSettings.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc
