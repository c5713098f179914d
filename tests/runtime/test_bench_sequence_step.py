"""bench/sequence_step.py runs and writes its table (the figures themselves are the bench's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]


def test_sequence_step_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "sequence_step.md"
    argv = [sys.executable, str(REPO / "bench" / "sequence_step.py"), "--tokens", "1536",
            "--rounds", "1", "--output", str(out)]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    table = out.read_text()
    assert "| ~1k tokens |" in table and "Ratio ~" in table
