"""bench/prefix_cache.py runs at tiny sizes, and every arm (reuse on, off, and transformers'
continuous batching) makes the same greedy tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[2]


def test_prefix_cache_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "prefix_cache.md"
    argv = [sys.executable, str(REPO / "bench" / "prefix_cache.py"), "--quick",
            "--output", str(out)]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr  # 1 = some arm's tokens differ
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| reuse", "| transformers"))]
    assert sum(line.endswith("| yes |") for line in rows) == 3, text
    assert "Reuse on / off:" in text and "hit in" in text
