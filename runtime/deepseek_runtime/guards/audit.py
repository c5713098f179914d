"""The audit log: one JSON line per API request, rotated by size.

Prompt and completion text stay out of the log unless the operator opts in
(`--audit-include-text`): the log usually outlives the data-retention rules for prompts.
Auditors read it back through GET /v1/audit.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class AuditRecord:
    endpoint: str
    status: int = 0
    key: str | None = None  # the key's name, never the key
    role: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    client: str | None = None
    request_id: str | None = None
    finish_reason: str | None = None
    door: str = "openai"  # openai | triton
    prompt: str | None = None  # only written with include_text
    completion: str | None = None
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))


class AuditLog:
    def __init__(
        self, path: Path, include_text: bool = False, max_bytes: int = 100 << 20, backups: int = 5
    ) -> None:
        self.path = path
        self.include_text = include_text
        path.parent.mkdir(parents=True, exist_ok=True)
        _end_torn_line(path)
        # A private logger so nothing else (root handlers, uvicorn) ever writes into it.
        self._logger = logging.getLogger(f"deepseek_runtime.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)
        self._read_lock = threading.Lock()

    def write(self, record: AuditRecord) -> None:
        line = asdict(record)
        if not self.include_text:
            line.pop("prompt")
            line.pop("completion")
        self._logger.info(json.dumps(line, ensure_ascii=False, separators=(",", ":")))

    def read(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` records, oldest first; reads backups only when it needs them."""
        records: list[dict[str, Any]] = []
        with self._read_lock:
            self._handler.flush()
            newest_first = [self.path] + [
                self.path.with_name(f"{self.path.name}.{i}")
                for i in range(1, self._handler.backupCount + 1)
            ]
            for f in newest_first:
                if len(records) >= limit or not f.exists():
                    break
                with f.open(encoding="utf-8", errors="replace") as fh:
                    lines: deque[str] = deque(fh, maxlen=limit - len(records))
                records = [r for r in map(_parse, lines) if r is not None] + records
        return records

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # a line cut by a crash mid-write: skip it, keep the rest readable
        return None
    return value if isinstance(value, dict) else None


def _end_torn_line(path: Path) -> None:
    """A crash can leave half a line; start the next run's records on a line of their own."""
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")
