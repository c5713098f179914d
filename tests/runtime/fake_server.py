"""`python tests/runtime/fake_server.py serve ...`: the real server process around FakeEngine.

For the fast inner loop only (the runtime suite proper serves real tiny models): the CLI,
HTTP, Triton, security and audit paths are all real; only `load_engine` is replaced.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from fake_engine import FakeEngine

from deepseek_runtime import cli, server


def _load_fake(settings: Any, path: Path, metrics: Any) -> FakeEngine:
    return FakeEngine(
        max_running=settings.max_num_seqs,
        max_queue=settings.max_queue,
        max_model_len=settings.max_model_len or 512,
        observer=metrics,
        token_delay_s=0.01,
    )


if __name__ == "__main__":
    server.load_engine = _load_fake  # type: ignore[assignment]
    sys.exit(cli.main())
