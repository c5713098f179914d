"""Triton's KServe v2 front door, through nvidia-pytriton, onto the SAME engine object.

Two models are bound, both submitting to the shared engine (so both doors batch together):
- `<name>`: decoupled, for `generate_stream` and gRPC streaming. It streams coalesced chunks
  (per-response overhead caps near 1,500 responses/s) unless the optional `stream` input is
  false, in which case it answers once, so the HTTP `generate` endpoint works on it too.
- `<name>_sync`: non-decoupled (Triton's HTTP/gRPC `infer` refuse decoupled models), with
  dynamic batching so concurrent infer calls reach the engine together.

Triton has no bearer auth of its own: the `Authorization` header is forwarded to the model as
a request parameter (infer and gRPC; the HTTP generate endpoints take it as a body field
`"authorization": "Bearer KEY"`) and checked with the same keys, roles and rate limit.
"""

from __future__ import annotations

import logging
import os
import re
import sysconfig
from typing import Any

from deepseek_runtime.doors.services import Services
from deepseek_runtime.doors.triton.models import TritonModels
from deepseek_runtime.doors.triton.tensors import declarations

log = logging.getLogger(__name__)

# tritonserver's own wait for its models to unload at exit (its default is 30 s). Our door has
# already waited for every request it started (stop() below), so what Triton would wait for is
# a decoupled request whose gRPC stream the client cancelled between the last data response and
# the final flag (a client that stops reading at finish_reason does this): Triton never
# releases it, and the wait would always run out, making SIGTERM take 30 s for nothing.
TRITON_EXIT_TIMEOUT_S = 3


def ensure_libpython_first() -> None:
    """Put this interpreter's libpython first for the Python backend stub.

    The stub links `libpython3.X.so` by name; the system's copy from another patch release
    crashes it (`'_thread.RLock' object has no attribute '_recursion_count'`).
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return
    parts = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
    os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *parts])


def triton_model_name(name: str) -> str:
    """Triton model names allow [A-Za-z0-9._-]: `org/Model` becomes `org--Model`."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name.replace("/", "--")) or "model"


class TritonServer:
    """Owns the tritonserver child process and the two bound models."""

    def __init__(self, services: Services) -> None:
        self.svc = services
        settings = services.settings
        self.models = TritonModels(services, settings.triton_chunk_ms / 1000.0)
        self.name = triton_model_name(services.model_name)
        self._triton: Any = None

    def start(self) -> None:
        """Blocking (seconds): starts tritonserver and waits until both models are ready."""
        ensure_libpython_first()  # before PyTriton copies os.environ for its child process
        from pytriton.model_config import DynamicBatcher, ModelConfig
        from pytriton.triton import Triton, TritonConfig

        s = self.svc.settings
        tls = s.tls_cert is not None
        if tls:
            log.warning(
                "Triton's HTTP endpoint cannot do TLS: it listens on 127.0.0.1 only; "
                "use gRPC (TLS) or the OpenAI port from outside the pod"
            )
        config = TritonConfig(
            http_address="127.0.0.1" if tls else s.host,
            http_port=s.triton_http_port,
            grpc_address=s.host,
            grpc_port=s.triton_grpc_port,
            metrics_port=s.triton_metrics_port,
            allow_metrics=True,
            http_header_forward_pattern="authorization",
            grpc_header_forward_pattern="authorization",
            grpc_use_ssl=tls or None,
            grpc_server_cert=s.tls_cert if tls else None,
            grpc_server_key=s.tls_key if tls else None,
            log_verbose=0,
            exit_timeout_secs=TRITON_EXIT_TIMEOUT_S,
        )
        triton = Triton(config=config)
        inputs, outputs = declarations()
        triton.bind(
            self.name,
            self.models.stream_fn,
            inputs=inputs,
            outputs=outputs,
            config=ModelConfig(batching=False, decoupled=True),
            strict=True,
        )
        batch = s.triton_max_batch_size or max(1, min(s.max_num_seqs, 64))
        # One instance: PyTriton's multi-instance handshake races on a busy 2-core box
        # ("Connection refused" at load). Concurrency comes from the dynamic batcher instead,
        # whose batches the callable runs concurrently in the engine.
        triton.bind(
            f"{self.name}_sync",
            self.models.whole_fn,
            inputs=inputs,
            outputs=outputs,
            config=ModelConfig(
                batching=True,
                max_batch_size=batch,
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=int(s.triton_max_queue_delay_ms * 1000)
                ),
            ),
            strict=True,
        )
        self._triton = triton
        triton.run()
        log.info(
            "Triton serving models %s and %s_sync on HTTP :%d, gRPC :%d, metrics :%d",
            self.name,
            self.name,
            s.triton_http_port,
            s.triton_grpc_port,
            s.triton_metrics_port,
        )

    def is_alive(self) -> bool:
        return self._triton is not None and self._triton.is_alive()

    def stop(self, drain_timeout_s: float) -> None:
        if not self.models.wait_idle(drain_timeout_s):
            log.warning("stopping Triton with %d requests still in flight", self.models.in_flight)
        if self._triton is not None:
            self._triton.stop()
            self._triton = None
