"""Where a process stands in a tensor-parallel replica, from settings and the LWS environment."""

from __future__ import annotations

import pytest

from deepseek_runtime.parallel.topology import LOOPBACK, TopologyError, topology

LEADER = "group-0.group.ai"


def lws(index: int, size: int = 2) -> dict[str, str]:
    return {"LWS_LEADER_ADDRESS": LEADER, "LWS_GROUP_SIZE": str(size),
            "LWS_WORKER_INDEX": str(index)}  # fmt: skip


def test_one_rank_without_parallelism() -> None:
    t = topology(1, 29500, {})
    assert (t.world_size, t.ranks, t.parallel, t.serves) == (1, (0,), False, True)


def test_one_pod_holds_every_rank_and_listens_on_loopback() -> None:
    t = topology(4, 29511, {"UNRELATED": "x"})
    assert t.ranks == (0, 1, 2, 3)
    assert (t.store_host, t.port, t.pods, t.serves) == (LOOPBACK, 29511, 1, True)
    assert [t.local_rank(r) for r in t.ranks] == [0, 1, 2, 3]


def test_a_group_splits_the_ranks_evenly_over_its_pods() -> None:
    leader, worker = topology(16, 29500, lws(0)), topology(16, 29500, lws(1))
    assert leader.ranks == tuple(range(8)) and worker.ranks == tuple(range(8, 16))
    assert leader.serves and not worker.serves
    assert leader.store_host == LOOPBACK  # its own ranks stay inside the pod
    assert worker.store_host == LEADER
    assert worker.local_rank(11) == 3  # GPU 3 of the second node


def test_a_child_sees_the_replica_from_its_own_rank() -> None:
    child = topology(16, 29500, lws(1)).with_rank(10)
    assert child.ranks[0] == 10 and sorted(child.ranks) == list(range(8, 16))
    assert child.local_rank(10) == 2
    with pytest.raises(TopologyError, match="rank 3 is not one of"):
        topology(16, 29500, lws(1)).with_rank(3)


@pytest.mark.parametrize(
    ("size", "env", "message"),
    [
        (6, lws(0, size=4), "does not split evenly over LWS_GROUP_SIZE=4"),
        (4, lws(2, size=2), "LWS_WORKER_INDEX=2 is outside a group of LWS_GROUP_SIZE=2"),
        (4, {"LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}, "LWS_LEADER_ADDRESS missing"),
        (4, {**lws(1), "LWS_GROUP_SIZE": "two"}, "LWS_GROUP_SIZE='two' is not an integer"),
        (0, {}, "must be at least 1"),
    ],
)
def test_inconsistent_pieces_are_refused_by_name(
    size: int, env: dict[str, str], message: str
) -> None:
    with pytest.raises(TopologyError, match=message):
        topology(size, 29500, env)
