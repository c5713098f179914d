"""The audit log: one JSON line per API request, rotated by size.

Prompt and completion text stay out of the log unless the operator opts in
(`--audit-include-text`): the log usually outlives the data-retention rules for prompts.
Auditors read it back through GET /v1/audit, a page at a time (newest first, by cursor).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import threading
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO


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
    cached: str | None = None  # "response": answered from the response cache, not the engine
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

    def read_page(self, limit: int = 100, cursor: str | None = None) -> Page:
        """The newest `limit` records before `cursor` (None: the newest of all), oldest first,
        and the cursor of the page before them (None once the oldest kept file is read).

        Blocking file I/O, at most PAGE_BYTES of it: call it off the event loop. A cursor
        names a file by its inode and first record, so it stays valid while the files rotate
        (until its file is deleted: CursorExpiredError) and while new records are written.
        """
        at = Cursor.parse(cursor) if cursor is not None else None
        with self._read_lock:
            self._handler.flush()
            files = self._files_newest_first()
            if at is None:
                index, end = 0, files[0][1].st_size if files else 0
            else:
                found = [i for i, (path, st) in enumerate(files) if st.st_ino == at.inode]
                found = [i for i in found if _first_line_crc(files[i][0]) == at.first]
                if not found:
                    raise CursorExpiredError("the audit log has rotated past this cursor")
                index, end = found[0], min(at.offset, files[found[0]][1].st_size)
            return _read_back(files, index, end, limit)

    def _files_newest_first(self) -> list[tuple[Path, os.stat_result]]:
        names = [self.path] + [
            self.path.with_name(f"{self.path.name}.{i}")
            for i in range(1, self._handler.backupCount + 1)
        ]
        found = []
        for name in names:
            try:
                found.append((name, name.stat()))
            except FileNotFoundError:
                break
        return found

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


PAGE_BYTES = 4 << 20  # the most one page reads (a record with --audit-include-text can be big)
BLOCK_BYTES = 64 << 10


class CursorExpiredError(ValueError):
    """The file a cursor pointed into has been rotated away (or the cursor is malformed)."""


@dataclass(slots=True, frozen=True)
class Cursor:
    inode: int
    first: int  # CRC-32 of the file's first line: inodes of deleted files get reused
    offset: int  # where the page's oldest record starts: the next page ends there

    def __str__(self) -> str:
        return f"{self.inode}-{self.first}-{self.offset}"

    @classmethod
    def at(cls, path: Path, st: os.stat_result, offset: int) -> Cursor:
        return cls(st.st_ino, _first_line_crc(path), offset)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        parts = text.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise CursorExpiredError(f"not an audit cursor: {text[:40]!r}")
        return cls(*map(int, parts))


def _first_line_crc(path: Path) -> int:
    """Records are only ever appended, so a file's first line never changes."""
    crc = 0
    with path.open("rb") as f:
        while block := f.read(BLOCK_BYTES):
            head, newline, _ = block.partition(b"\n")
            crc = zlib.crc32(head, crc)
            if newline:
                break
    return crc


@dataclass(slots=True)
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None
    bytes_read: int


def _read_back(files: list[tuple[Path, os.stat_result]], index: int, end: int, limit: int) -> Page:
    """Walk back from byte `end` of files[index] into older files until `limit` records."""
    records: list[dict[str, Any]] = []
    read = 0
    while index < len(files) and len(records) < limit and read < PAGE_BYTES:
        path, st = files[index]
        with path.open("rb") as f:
            lines, start, n = lines_before(f, end, limit - len(records), PAGE_BYTES - read)
        read += n
        records = [r for r in map(_parse, lines) if r is not None] + records
        if start > 0:  # more in this file
            return Page(records, str(Cursor.at(path, st, start)), read)
        index += 1
        end = files[index][1].st_size if index < len(files) else 0
    if index == len(files):
        return Page(records, None, read)
    return Page(records, str(Cursor.at(*files[index], end)), read)


def lines_before(f: BinaryIO, end: int, limit: int, max_bytes: int) -> tuple[list[bytes], int, int]:
    """Up to `limit` whole lines of `f` that end before byte `end`, oldest first: (lines, the
    offset where the oldest starts, bytes read). Reads backwards in blocks, and stops after
    max_bytes once it has a line; a partial line at `end` (a write in progress) is left out."""
    buffer, pos, read = b"", end, 0
    while True:
        size = min(BLOCK_BYTES, pos)
        pos -= size
        f.seek(pos)
        buffer = f.read(size) + buffer
        read += size
        last = buffer.rfind(b"\n")
        whole = buffer[: last + 1]  # what ends with a newline
        parts = whole[:-1].split(b"\n") if whole else []
        known = parts if pos == 0 else parts[1:]  # the first may have begun before pos
        if pos == 0 or len(known) >= limit or (read >= max_bytes and known):
            chosen = known[-limit:] if limit else []
            start = pos + len(whole) - sum(len(line) + 1 for line in chosen)
            return chosen, start, read


def _parse(line: bytes | str) -> dict[str, Any] | None:
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
