"""`deepseek-runtime serve`: wires settings, guards, engine, HTTP and Triton together.

Order matters: everything startup.py checks comes BEFORE the (slow) model load. The HTTP ports
(the OpenAI port and the metrics port, listeners.py) open early (/health answers while the model
loads, so liveness probes do not kill a pod that is loading 60 GB); /ready turns true only once the
engine is warmed and Triton's models are bound. SIGTERM drains: /ready goes 503, new requests
get 503, in-flight ones (both doors) finish within --drain-timeout-s, then everything stops
(drain.py: one budget for the whole shutdown).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from deepseek_runtime.doors.services import Services
from deepseek_runtime.doors.triton.server import TritonServer, ensure_libpython_first
from deepseek_runtime.engine.protocol import Engine
from deepseek_runtime.metrics import RuntimeMetrics
from deepseek_runtime.parallel.ranks import LocalRanks
from deepseek_runtime.parallel.topology import Topology
from deepseek_runtime.server.drain import (
    Deadline,
    end_at_deadline,
    stop_the_rest,
    uvicorn_timeout_s,
)
from deepseek_runtime.server.listeners import Listeners, bound_port
from deepseek_runtime.server.startup import (
    StartupError,
    build_services,
    check_settings,
    check_weights,
)
from deepseek_runtime.server.worker import check_shards, load_shard, place, start_local_ranks
from deepseek_runtime.settings import ServerSettings

log = logging.getLogger("deepseek_runtime")

READY_TIMEOUT_S = 600.0
LOST_GRACE_S = 1.0  # a lost rank: /ready answers 503 this long before the shutdown begins
LOST_EXIT_S = 10.0  # ... and the process is gone this long after, even if a thread hangs


class Replica:
    """Rank 0's view of its tensor-parallel replica: where it stands, this pod's other ranks,
    and what a lost rank does (not ready at once, then exit non-zero within seconds)."""

    def __init__(self, where: Topology) -> None:
        self.where = where
        self.ranks: LocalRanks | None = None
        self.lost_reason: str | None = None
        self.svc: Services | None = None
        self.server: _Server | None = None

    def lost(self, reason: str) -> None:  # any thread; once
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        log.error("tensor-parallel rank lost (%s): not ready; exiting", reason)
        if self.svc is not None:
            self.svc.ready, self.svc.draining = False, True
        threading.Timer(LOST_GRACE_S, self._stop_serving).start()
        backstop = threading.Timer(LOST_EXIT_S, self._exit_now)
        backstop.daemon = True  # a collective stuck on a dead peer must not hold the exit
        backstop.start()

    def _stop_serving(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    def _exit_now(self) -> None:
        log.error("exiting now: the shutdown did not finish after a lost rank")
        self.stop_ranks()
        os._exit(1)

    def stop_ranks(self) -> None:
        if self.ranks is not None:
            self.ranks.stop()


def load_engine(
    settings: ServerSettings, path: Path, metrics: RuntimeMetrics, replica: Replica | None = None
) -> Engine:
    """Blocking (seconds to minutes): loads the weights and warms the engine up."""
    from deepseek_runtime.engine.config import EngineConfig
    from deepseek_runtime.runner.loop import LLMEngine, build_engine

    config = EngineConfig(
        max_num_seqs=settings.max_num_seqs,
        max_queue=settings.max_queue,
        max_model_len=settings.max_model_len,
        default_max_tokens=settings.default_max_tokens,
        max_num_batched_tokens=max(settings.max_num_batched_tokens, settings.max_num_seqs),
        kv_cache_tokens=settings.kv_cache_tokens,
        torch_threads=settings.torch_threads,
        stream_interval_tokens=settings.stream_interval_tokens,
        prefix_caching=settings.prefix_caching,
        block_size=settings.kv_block_size,
    )
    if replica is not None and replica.where.parallel:
        from deepseek_runtime.parallel.leader import lead

        loaded, peers = lead(replica.where, replica.lost, lambda: load_shard(settings, path))
        engine = LLMEngine(loaded, config, metrics, peers).start()
        if not engine.wait_ready():
            raise StartupError(f"the engine failed to start: {engine.failure}")
        return engine
    return build_engine(
        str(path),
        dtype=settings.dtype,
        quantization=settings.quantization,
        config=config,
        model_name=settings.served_model_name,
        observer=metrics,
    )


def uvicorn_config(settings: ServerSettings, app: Any) -> uvicorn.Config:
    """How uvicorn serves ``app`` on the sockets it is handed (host and port: for its logs)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="off",
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
        timeout_graceful_shutdown=uvicorn_timeout_s(settings.drain_timeout_s),
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    config.load()
    if config.ssl is not None:
        # uvicorn has no minimum-version option; its context is ours to tighten after load().
        config.ssl.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if settings.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
    return config


class _Server(uvicorn.Server):
    """uvicorn, plus: the first signal flips the runtime into draining and starts the drain
    clock, at whose end the engine ends what is still in flight."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.svc = services
        self.deadline: Deadline | None = None
        self._loop = asyncio.get_running_loop()
        self._ender: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.deadline is None:
            budget = self.svc.settings.drain_timeout_s
            log.info("signal %d: draining (up to %.0f s)", sig, budget)
            self.deadline = Deadline(budget)
            self._loop.call_soon_threadsafe(self._start_ending)
        self.svc.draining = True
        super().handle_exit(sig, frame)

    def _start_ending(self) -> None:
        assert self.deadline is not None
        self._ender = asyncio.create_task(end_at_deadline(lambda: self.svc.engine, self.deadline))

    def stop_ending(self) -> None:
        if self._ender is not None:
            self._ender.cancel()


async def _bring_up(
    svc: Services, server: _Server, path: Path, doors: list[Any], replica: Replica
) -> None:
    settings = svc.settings
    started = time.monotonic()
    engine = await anyio.to_thread.run_sync(load_engine, settings, path, svc.metrics, replica)
    svc.attach(engine)
    while not engine.is_ready():
        if time.monotonic() - started > READY_TIMEOUT_S:
            raise StartupError("the engine did not become ready in time")
        await asyncio.sleep(0.05)
    log.info(
        "engine ready: %s (max_model_len %d) in %.1f s",
        svc.model_name,
        engine.max_model_len,
        time.monotonic() - started,
    )
    if settings.triton and not server.should_exit:
        door = TritonServer(svc)
        doors.append(door)
        await anyio.to_thread.run_sync(door.start)
        svc.triton_alive = door.is_alive
    # ~450k objects survive loading; without a freeze a later full collection walks them all
    # and stalls every stream for ~240 ms (measured by bench/runtime.py at 32 clients).
    gc.collect()
    gc.freeze()
    svc.ready = not svc.draining
    log.info("ready")


async def serve_async(settings: ServerSettings, svc: Services, path: Path, replica: Replica) -> int:
    listeners = Listeners(settings.host, settings.port, settings.metrics_port)
    try:
        server = _Server(uvicorn_config(settings, listeners.app(svc)), svc)
    except BaseException:
        listeners.close()
        raise
    replica.svc, replica.server = svc, server
    if replica.lost_reason is not None:  # a local rank died before the server existed
        listeners.close()
        return 1
    scheme = "https" if settings.tls_cert else "http"
    log.info(
        "listening: OpenAI API on %s://%s:%d, /metrics alone on %s://%s:%d",
        *(scheme, settings.host, bound_port(listeners.api)),
        *(scheme, settings.host, bound_port(listeners.metrics)),
    )
    doors: list[TritonServer] = []
    failed: list[BaseException] = []

    async def bring_up() -> None:
        try:
            await _bring_up(svc, server, path, doors, replica)
        except Exception as exc:
            log.exception("startup failed: %s", exc)
            failed.append(exc)
            server.should_exit = True

    task = asyncio.create_task(bring_up())
    await server.serve(sockets=listeners.sockets)
    svc.draining = True
    if not task.done():
        log.warning("stopped before the model finished loading")
        return 1 if failed or replica.lost_reason else 0
    await stop_the_rest(doors, svc.engine, server.deadline or Deadline(settings.drain_timeout_s))
    server.stop_ending()
    if svc.audit is not None:
        svc.audit.close()
    log.info("stopped")
    return 1 if failed or replica.lost_reason or not server.started else 0


def run(settings: ServerSettings, where: Topology | None = None) -> int:
    """Blocking entry point; returns the process exit code (StartupError: do not start)."""
    path = check_settings(settings)
    check_weights(settings, path)
    replica = Replica(where or place(settings))
    if replica.where.parallel:
        check_shards(settings, path)
    svc = build_services(settings)
    ensure_libpython_first()  # early, before any thread could spawn a child process
    # uvicorn re-raises the signal it caught once it has shut down; handlers of our own turn
    # that into a normal return, so the drain after it runs and the exit code is 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    if len(replica.where.ranks) > 1:  # from this (main) thread: see parallel/ranks.py
        replica.ranks = start_local_ranks(settings, replica.where, replica.lost)
    try:
        return asyncio.run(serve_async(settings, svc, path, replica))
    finally:
        replica.stop_ranks()
