"""The ranks of a tensor-parallel replica that do not serve: `serve` in a LeaderWorkerSet
worker pod (LWS_WORKER_INDEX > 0), and `worker --rank N`, the child process `serve` starts for
each other rank of its own pod. Both follow rank 0's steps (parallel/follower.py).

Children get the parent's resolved settings as a config file (and inherit its environment, so
DEEPSEEK_RUNTIME_* variables resolve the same), so every rank loads the same model the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deepseek_runtime.parallel.ranks import LocalRanks
from deepseek_runtime.parallel.topology import Topology, TopologyError, topology
from deepseek_runtime.server.startup import StartupError, check_weights, model_path
from deepseek_runtime.settings import ServerSettings

log = logging.getLogger("deepseek_runtime")


def place(settings: ServerSettings, env: dict[str, str] | None = None) -> Topology:
    """This pod's place in its replica (StartupError if settings and LWS_* disagree)."""
    try:
        return topology(settings.tensor_parallel_size, settings.rendezvous_port,
                        dict(os.environ) if env is None else env)  # fmt: skip
    except TopologyError as exc:
        raise StartupError(str(exc)) from exc


def check_shards(settings: ServerSettings, path: Path) -> None:
    """Refuse, before any rank loads, a model that cannot be split as asked."""
    from deepseek_runtime.model.sharding import check_shardable
    from deepseek_runtime.model.source import resolve_source

    try:
        check_shardable(resolve_source(path), settings.quantization,
                        settings.tensor_parallel_size)  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise StartupError(str(exc)) from exc


def settings_file(settings: ServerSettings) -> Path:
    values = settings.model_dump(mode="json", exclude_none=True)
    fd, name = tempfile.mkstemp(prefix="deepseek-runtime-", suffix=".yaml")
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(values, out)
    atexit.register(lambda: Path(name).unlink(missing_ok=True))
    return Path(name)


def start_local_ranks(
    settings: ServerSettings, place: Topology, on_exit: Callable[[str], None]
) -> LocalRanks:
    """Start this pod's other ranks (call from the main thread: ranks.py says why)."""
    config = settings_file(settings)
    commands = {
        rank: [
            sys.executable,
            "-m",
            "deepseek_runtime",
            "worker",
            "--rank",
            str(rank),
            "--config",
            str(config),
        ]
        for rank in place.ranks[1:]
    }
    return LocalRanks(commands, on_exit).start()


def torch_threads(settings: ServerSettings) -> int:
    return settings.torch_threads or max(1, len(os.sched_getaffinity(0)) - 1)


def load_shard(settings: ServerSettings, path: Path) -> Any:
    from deepseek_runtime.model.loader import load_model

    return load_model(path, dtype=settings.dtype, quantization=settings.quantization,
                      tensor_parallel_size=settings.tensor_parallel_size)  # fmt: skip


def run_rank(settings: ServerSettings, place: Topology) -> int:
    """This process as the follower rank place.ranks[0], until rank 0 stops it."""
    from deepseek_runtime.parallel.follower import run_follower

    path = model_path(settings)
    return run_follower(place, lambda: load_shard(settings, path).model, torch_threads(settings))


def run_pod(settings: ServerSettings, place: Topology) -> int:
    """A worker pod of a group: its first rank here, the others as children. Its weights are
    its own files (its node's volume): checked like the leader's."""
    path = model_path(settings)
    check_weights(settings, path)
    check_shards(settings, path)
    log.info("worker pod %d of %d: ranks %s, rank 0 at %s:%d", place.pod_index, place.pods,
             list(place.ranks), place.store_host, place.port)  # fmt: skip

    def child_exited(reason: str) -> None:
        log.error("%s: this pod's ranks stop", reason)
        os._exit(1)  # the other children die with this process (PR_SET_PDEATHSIG)

    children = start_local_ranks(settings, place, child_exited)
    try:
        return run_rank(settings, place)
    finally:
        with contextlib.suppress(Exception):
            children.stop()
