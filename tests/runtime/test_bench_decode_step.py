"""bench/decode_step.py runs, and every arm (CPU kernels on or off) gives generate's tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]


def test_decode_step_bench_smoke(tmp_path: Path, tiny_qwen2_dir: Path) -> None:
    out = tmp_path / "decode_step.md"
    bench = str(REPO / "bench" / "decode_step.py")
    argv = [sys.executable, bench, "--model", str(tiny_qwen2_dir), "--rows", "1,3",
            "--new-tokens", "6", "--rounds", "1", "--output", str(out)]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr  # 1 = some arm's tokens differ
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| 1 |", "| 3 |"))]
    assert len(rows) == 8 and all(line.endswith("| yes |") for line in rows)
