"""Joining the replica's process group: a TCPStore rendezvous at rank 0, then torch.distributed
(NCCL between GPUs, gloo on CPU) for the model's collectives, plus a gloo group of its own for
the engine's step messages (small, on the CPU, and idle for as long as the server is).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from deepseek_runtime.parallel.topology import Topology

log = logging.getLogger(__name__)

JOIN_TIMEOUT = timedelta(minutes=15)  # other pods of a group may still be pulling their image
COLLECTIVE_TIMEOUT = timedelta(minutes=10)  # a forward's all-reduce; liveness acts far sooner
# Followers wait on the step group between requests, for as long as the server is idle: no
# deadline there (a silent or dead peer is liveness.py's business, not a timeout's).
IDLE_TIMEOUT = timedelta(days=365)


@dataclass(slots=True)
class Group:
    topology: Topology
    rank: int
    steps: dist.ProcessGroup  # gloo: the engine's step messages, rank 0 -> every rank
    device: torch.device

    @property
    def world_size(self) -> int:
        return self.topology.world_size


def connect_store(topology: Topology, timeout: timedelta, rank0: bool = False) -> dist.TCPStore:
    """A client of rank 0's store (rank0: create it; it listens on the rendezvous port)."""
    return dist.TCPStore(
        topology.store_host,
        topology.port,
        topology.world_size,
        is_master=rank0,
        timeout=timeout,
        wait_for_workers=False,
    )


def join(topology: Topology) -> Group:
    """Join as this process's rank (topology.ranks[0]); blocks until every rank has joined.
    On rank 0 this creates the store (the process group keeps it alive)."""
    rank = topology.ranks[0]
    local = topology.local_rank(rank)
    cuda = torch.cuda.is_available()
    # transformers places each rank's shard on cuda:LOCAL_RANK (distributed/utils.py).
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local), WORLD_SIZE=str(topology.world_size))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda and local >= (seen := torch.cuda.device_count()):
        raise RuntimeError(
            f"rank {rank} needs GPU {local} of its pod, which sees only {seen}: one GPU per rank"
        )
    if cuda:
        torch.cuda.set_device(device)
    store = connect_store(topology, JOIN_TIMEOUT, rank0=rank == 0)
    log.info("rank %d/%d joining at %s:%d", rank, topology.world_size, topology.store_host,
             topology.port)  # fmt: skip
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        store=dist.PrefixStore("model", store),
        rank=rank,
        world_size=topology.world_size,
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device if cuda else None,
    )
    steps = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)
    assert isinstance(steps, dist.ProcessGroup)  # every rank is a member
    log.info("rank %d/%d joined", rank, topology.world_size)
    return Group(topology, rank, steps, device)
