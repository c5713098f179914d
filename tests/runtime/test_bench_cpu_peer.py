"""bench/cpu_peer.py's table (ratios against llama.cpp from the same run) and where
bench/llama_server.py caches its build: outside the repository, by version."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import cpu_peer  # noqa: E402
import llama_server  # noqa: E402


def test_table_ratios_are_against_llama_cpp_at_the_same_client_count() -> None:
    levels = [
        cpu_peer.Level("ours int8", 16, tokens=300, wall_s=2.0, ttfts=[0.2, 0.4, 0.9], load="1.5"),
        cpu_peer.Level("llama.cpp", 16, tokens=200, wall_s=2.0, ttfts=[0.8, 0.8], load="1.6"),
        cpu_peer.Level("ours int8", 1, tokens=64, wall_s=4.0, ttfts=[0.1], load="1.4"),
    ]
    args = argparse.Namespace(quick=True, threads=None)
    table = cpu_peer.render(levels, args, "", time.monotonic())
    assert "| ours int8 | 16 | 150.0 | 1.50x | 400 ms | 0.50x | 1.5 |" in table
    assert "| ours int8 | 1 | 16.0 | - | 100 ms | - | 1.4 |" in table  # no peer level: no ratio


def test_llama_server_is_cached_outside_the_repository_by_version() -> None:
    path = llama_server.binary_path("9.9.9")
    assert path.name == "llama-server" and "llama-server-9.9.9" in path.parts
    assert REPO not in path.parents
