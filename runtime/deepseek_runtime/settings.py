"""Typed server settings, loaded and validated once: the one source of every `serve` flag.

Sources, highest precedence first: command-line flags, `DEEPSEEK_RUNTIME_<SETTING>` environment
variables, a YAML `--config FILE` (or `DEEPSEEK_RUNTIME_CONFIG`; the operator mounts its
ConfigMap as this file) with the same keys (dashes or underscores), then the defaults below.
Each field's description is its flag's help (server/flags.py builds the flags from here).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "DEEPSEEK_RUNTIME_"
GROUPS = ("model", "network", "security")


class SettingsError(Exception):
    """Settings that cannot work together or do not parse; the message names the key."""


def _in(group: str) -> Any:
    def setting(default: Any, help: str, **constraints: Any) -> Any:
        return Field(default, description=help, json_schema_extra={"group": group}, **constraints)

    return setting


model_setting, network_setting, security_setting = (_in(g) for g in GROUPS)


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # model and engine
    model: str | None = model_setting(
        None,
        "HF model directory, HF cache repo or GGUF directory/file "
        "(unset: the bundled SmolLM2-135M-Instruct GGUF)",
    )
    gguf_file: str | None = model_setting(None, "GGUF file name inside --model")
    dtype: str = model_setting("auto", "auto | float32 | bfloat16 | float16")
    quantization: str = model_setting(
        "none",
        "none | bf16 | fp16 | int8 | int4 | bnb-int8 | bnb-nf4 | awq | gptq | fp8 "
        "(what this machine supports is checked at start-up)",
    )
    served_model_name: str | None = model_setting(
        None, "model id clients use (unset: from the model)"
    )
    max_num_seqs: int = model_setting(32, "sequences generated at once", ge=1)
    max_queue: int = model_setting(256, "waiting requests before 429", ge=1)
    max_model_len: int | None = model_setting(
        None, "context cap, prompt + output tokens (unset: the model's own)", ge=16
    )
    default_max_tokens: int = model_setting(
        4096,
        "new tokens for a request that names no max_tokens: the rest of the context, at most "
        "this many (both doors)",
        ge=1,
    )
    max_num_batched_tokens: int = model_setting(4096, "prompt tokens per prefill step", ge=1)
    kv_cache_tokens: int | None = model_setting(
        None,
        "KV cache budget in tokens, in blocks of --kv-block-size; each running sequence "
        "reserves its prompt + max_tokens, less a cached prefix (unset: max-num-seqs x "
        "max-model-len)",
        ge=1,
    )
    prefix_caching: bool = model_setting(
        True, "reuse the KV of prompt prefixes already computed (per API key)"
    )
    kv_block_size: int = model_setting(
        16, "tokens per KV cache block: the granularity of prefix reuse", ge=1, le=1024
    )
    response_cache_size: int = model_setting(
        0,
        "whole responses kept for identical deterministic requests (temperature 0 or a seed), "
        "per API key (0: off)",
        ge=0,
    )
    response_cache_ttl_s: float = model_setting(
        300.0, "how long a cached response may answer", gt=0
    )
    torch_threads: int | None = model_setting(
        None, "torch threads (unset: all cores but one)", ge=1
    )
    tensor_parallel_size: int = model_setting(
        1,
        "ranks (GPUs) the model is sharded over, one process each; in a LeaderWorkerSet group "
        "(LWS_* environment) across all its pods, else all in this pod",
        ge=1,
        le=1024,
    )
    reasoning: Literal["auto", "on", "off"] = model_setting(
        "auto", "split <think>...</think> into reasoning_content"
    )
    # network
    host: str = network_setting("127.0.0.1", "address to bind")
    port: int = network_setting(8080, "OpenAI API, /metrics, probes", ge=0, le=65535)
    # /metrics alone, so a NetworkPolicy can let Prometheus scrape without reaching the API; the
    # API port keeps /metrics too (the inference extension's endpoint picker scrapes that one).
    metrics_port: int = network_setting(8090, "/metrics alone (no API, no probes)", ge=0, le=65535)
    triton: bool = network_setting(True, "start Triton (--no-triton for fast tests)")
    triton_http_port: int = network_setting(8000, "KServe v2 HTTP", ge=0, le=65535)
    triton_grpc_port: int = network_setting(8001, "KServe v2 gRPC", ge=0, le=65535)
    triton_metrics_port: int = network_setting(8002, "Triton's metrics", ge=0, le=65535)
    rendezvous_port: int = network_setting(
        29500,
        "where rank 0 listens for the other ranks (loopback in one pod, the leader's address "
        "in a LeaderWorkerSet group)",
        ge=1,
        le=65535,
    )
    # Measured against waking on every token at 32 clients on 2 cores: +28% tok/s for streams,
    # +42% for Triton's 200 ms chunks (bench/results/runtime.md).
    stream_interval_tokens: int = network_setting(
        4, "wake a stream on its first token, then every N tokens", ge=1, le=256
    )
    triton_chunk_ms: float = network_setting(
        200.0, "after its first token, a Triton stream sends a chunk every this many ms", ge=0
    )
    triton_max_batch_size: int | None = network_setting(
        None,
        "requests the _sync model's dynamic batcher merges (unset: max-num-seqs, at most 64)",
        ge=1,
        le=1024,
    )
    triton_max_queue_delay_ms: float = network_setting(
        2.0, "how long the dynamic batcher waits to fill a batch", ge=0, le=10_000
    )
    max_body_bytes: int = network_setting(4 << 20, "largest request body", ge=1024)
    drain_timeout_s: float = network_setting(30.0, "SIGTERM drain budget in seconds", ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = network_setting("info", "log level")
    # security
    api_keys: Path | None = security_setting(None, "YAML list of {name, role, sha256}")
    allow_unauthenticated: bool = security_setting(
        False, "allow binding beyond loopback without API keys"
    )
    metrics_auth: bool = security_setting(False, "require an auditor/admin key for /metrics")
    rate_limit_rps: float = security_setting(10.0, "per-key requests/s (0: off)", ge=0)
    rate_limit_burst: float = security_setting(20.0, "per-key burst", ge=1)
    tls_cert: Path | None = security_setting(None, "PEM certificate (chain) for HTTPS")
    tls_key: Path | None = security_setting(None, "PEM private key for HTTPS")
    tls_min_version: Literal["1.2", "1.3"] = security_setting("1.2", "oldest TLS version accepted")
    verify_manifest: Path | None = security_setting(
        None, "refuse to start unless the weights match this manifest (see `manifest`)"
    )
    audit_log: Path | None = security_setting(None, "JSON-lines audit log file")
    audit_include_text: bool = security_setting(
        False, "write prompt and completion text into the audit log"
    )
    audit_max_bytes: int = security_setting(100 << 20, "rotate the audit log at this size", ge=1024)
    audit_backups: int = security_setting(5, "rotated audit files kept", ge=0)
    output_filter: Path | None = security_setting(None, "file of regexes that end an output")
    output_filter_holdback: int = security_setting(
        64, "characters a stream holds back for the output filter", ge=0
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.metrics_auth and self.api_keys is None:
            raise ValueError("metrics_auth needs api_keys")
        if (clash := self._port_clash()) is not None:
            raise ValueError(clash)
        return self

    def _port_clash(self) -> str | None:
        """Two listeners on one port (0, a free port the kernel picks, never clashes)."""
        ports = {"port": self.port, "metrics_port": self.metrics_port}
        if self.triton:
            ports |= {
                "triton_http_port": self.triton_http_port,
                "triton_grpc_port": self.triton_grpc_port,
                "triton_metrics_port": self.triton_metrics_port,
            }
        seen: dict[int, str] = {}
        for name, number in ports.items():
            if number and number in seen:
                return f"{name} {number} is also {seen[number]}: each listener needs its own port"
            seen[number] = name
        return None

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
    # An empty variable means "unset": leave the default in place.
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
