"""The ranks that do not serve: how `serve` hands its settings to them and where they stand."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_runtime.server.cli import build_parser
from deepseek_runtime.server.startup import StartupError
from deepseek_runtime.server.worker import place, settings_file
from deepseek_runtime.settings import ServerSettings, load_settings


def test_a_child_rank_resolves_exactly_the_parents_settings(tmp_path: Path) -> None:
    parent = ServerSettings(
        model=str(tmp_path), tensor_parallel_size=4, rendezvous_port=29611, max_num_seqs=3,
        kv_block_size=32, api_keys=tmp_path / "keys.yaml", quantization="bf16",
    )  # fmt: skip
    assert load_settings({}, {}, settings_file(parent)) == parent


def test_the_worker_command_takes_its_rank_and_every_serve_flag() -> None:
    args = build_parser().parse_args(
        ["worker", "--rank", "3", "--config", "/tmp/x.yaml", "--tensor-parallel-size", "4"]
    )
    assert (args.command, args.rank, args.tensor_parallel_size) == ("worker", 3, 4)


def test_an_lws_environment_that_disagrees_with_the_settings_stops_start_up() -> None:
    settings = ServerSettings(tensor_parallel_size=3)
    env = {"LWS_LEADER_ADDRESS": "g-0.g", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}
    with pytest.raises(StartupError, match="does not split evenly over LWS_GROUP_SIZE=2"):
        place(settings, env)
    assert place(ServerSettings(tensor_parallel_size=4), env).ranks == (2, 3)
