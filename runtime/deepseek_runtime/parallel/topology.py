"""Where this process stands in a tensor-parallel replica: pure, from two settings and the
environment. No torch.

One pod (no LWS_* variables): `tensor_parallel_size` ranks, all in this pod, rank 0 listening
on loopback. A LeaderWorkerSet group: the LWS controller injects LWS_LEADER_ADDRESS,
LWS_GROUP_SIZE and LWS_WORKER_INDEX into every pod (the operator sets none of them); each pod
holds `tensor_parallel_size / LWS_GROUP_SIZE` consecutive ranks, pod i starting at i times
that, and pod 0 (the leader) holds rank 0, which serves and listens on `rendezvous_port`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
LWS_ENV = ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX")


class TopologyError(ValueError):
    """Settings and environment that do not describe a replica; the message names the value."""


@dataclass(slots=True, frozen=True)
class Topology:
    world_size: int  # ranks in the replica, all pods together
    ranks: tuple[int, ...]  # this pod's ranks; this process runs the first, the rest are children
    store_host: str  # where this pod reaches rank 0's rendezvous store
    port: int  # rank 0's rendezvous port
    pods: int = 1
    pod_index: int = 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    @property
    def serves(self) -> bool:
        """Only the pod holding rank 0 runs the engine's scheduler and the front doors."""
        return self.pod_index == 0

    def local_rank(self, rank: int) -> int:
        """The rank's index inside its pod: its GPU there."""
        return rank - min(self.ranks)

    def with_rank(self, rank: int) -> Topology:
        """The same replica seen from another rank of this pod (a spawned child)."""
        if rank not in self.ranks:
            raise TopologyError(f"rank {rank} is not one of this pod's ranks {list(self.ranks)}")
        others = tuple(r for r in self.ranks if r != rank)
        return Topology(self.world_size, (rank, *others), self.store_host, self.port,
                        self.pods, self.pod_index)  # fmt: skip


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise TopologyError(f"{name}={env[name]!r} is not an integer") from None


def topology(tensor_parallel_size: int, rendezvous_port: int, env: Mapping[str, str]) -> Topology:
    """This pod's place in the replica (TopologyError when the pieces disagree)."""
    if tensor_parallel_size < 1:
        raise TopologyError(f"tensor_parallel_size {tensor_parallel_size} must be at least 1")
    present = [name for name in LWS_ENV if env.get(name)]
    if not present:
        return Topology(tensor_parallel_size, tuple(range(tensor_parallel_size)), LOOPBACK,
                        rendezvous_port)  # fmt: skip
    if len(present) != len(LWS_ENV):
        missing = sorted(set(LWS_ENV) - set(present))
        raise TopologyError(f"a LeaderWorkerSet pod needs all of {', '.join(LWS_ENV)}; "
                            f"{', '.join(missing)} missing")  # fmt: skip
    pods, index = _int(env, "LWS_GROUP_SIZE"), _int(env, "LWS_WORKER_INDEX")
    if pods < 1 or not 0 <= index < pods:
        raise TopologyError(f"LWS_WORKER_INDEX={index} is outside a group of LWS_GROUP_SIZE={pods}")
    if tensor_parallel_size % pods:
        raise TopologyError(
            f"tensor_parallel_size {tensor_parallel_size} does not split evenly over "
            f"LWS_GROUP_SIZE={pods} pods"
        )
    per_pod = tensor_parallel_size // pods
    ranks = tuple(range(index * per_pod, (index + 1) * per_pod))
    # The leader's own ranks reach its store on loopback: its address may not resolve in DNS
    # before the pod is ready, and traffic inside the pod need not leave it.
    host = LOOPBACK if index == 0 else env["LWS_LEADER_ADDRESS"]
    return Topology(tensor_parallel_size, ranks, host, rendezvous_port, pods, index)
