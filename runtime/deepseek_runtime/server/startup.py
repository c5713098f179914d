"""What `serve` checks and builds before the (slow) model load, so that a bad deployment fails
in seconds with a message naming the problem: unsafe settings, missing files, weights that do
not match their manifest, unreadable keys, filters or audit log."""

from __future__ import annotations

import logging
from pathlib import Path

from deepseek_runtime.doors.response_cache import ResponseCache
from deepseek_runtime.doors.services import Services
from deepseek_runtime.guards.audit import AuditLog
from deepseek_runtime.guards.integrity import ManifestError, verify_manifest
from deepseek_runtime.guards.keys import Guard, KeyFileError, RateLimiter, load_api_keys
from deepseek_runtime.guards.output_filter import FilterFileError, OutputFilter
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.settings import ServerSettings

log = logging.getLogger("deepseek_runtime")

FILE_SETTINGS = ("tls_cert", "tls_key", "api_keys", "output_filter", "verify_manifest")


class StartupError(Exception):
    """A reason not to start; the CLI prints it and exits non-zero."""


def model_path(settings: ServerSettings) -> Path:
    """The model to load: a directory, a .gguf file, or the bundled SmolLM2 GGUF."""
    if settings.model is None:
        from deepseek_runtime.model.source import default_model_path

        return Path(default_model_path())
    path = Path(settings.model)
    return path / settings.gguf_file if settings.gguf_file else path


def check_settings(settings: ServerSettings) -> Path:
    """Refuses unsafe bindings and missing files; returns the model's path."""
    if (why := settings.unsafe_binding()) is not None:
        raise StartupError(why)
    for name in FILE_SETTINGS:
        value = getattr(settings, name)
        if value is not None and not Path(value).is_file():
            raise StartupError(f"--{name.replace('_', '-')} {value}: no such file")
    path = model_path(settings)
    if not path.exists():
        raise StartupError(f"--model {path}: no such file or directory")
    return path


def check_weights(settings: ServerSettings, path: Path) -> None:
    if settings.verify_manifest is None:
        return
    root = path if path.is_dir() else path.parent
    log.info("verifying %s against manifest %s", root, settings.verify_manifest)
    try:
        report = verify_manifest(root, settings.verify_manifest)
    except (ManifestError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    if not report.ok:
        raise StartupError(
            "weights do not match the manifest, refusing to start:\n  "
            + "\n  ".join(report.problems())
        )


def build_services(settings: ServerSettings) -> Services:
    """Everything but the engine; raises StartupError on any unusable file."""
    try:
        keys = load_api_keys(settings.api_keys) if settings.api_keys else None
        output_filter = (
            OutputFilter.load(settings.output_filter, settings.output_filter_holdback)
            if settings.output_filter
            else OutputFilter([])
        )
        audit = (
            AuditLog(
                settings.audit_log,
                settings.audit_include_text,
                settings.audit_max_bytes,
                settings.audit_backups,
            )
            if settings.audit_log
            else None
        )
    except (KeyFileError, FilterFileError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    guard = Guard(keys, RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst))
    cache = ResponseCache(settings.response_cache_size, settings.response_cache_ttl_s)
    return Services(settings, guard, RuntimeMetrics(), output_filter, audit, cache)
