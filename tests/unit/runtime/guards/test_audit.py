"""The audit log: JSON lines, no text unless asked, rotation, reading back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_runtime.guards.audit import (
    PAGE_BYTES,
    AuditLog,
    AuditRecord,
    CursorExpiredError,
    Page,
    lines_before,
)

FIELDS = {"time", "key", "role", "endpoint", "model", "prompt_tokens", "completion_tokens",
          "status", "latency_s", "client"}  # fmt: skip


def record(i: int = 0) -> AuditRecord:
    return AuditRecord(
        endpoint="/v1/chat/completions", status=200, key="app", role="inference", model="m",
        prompt_tokens=5, completion_tokens=7, latency_s=0.1, client="10.0.0.1",
        prompt=f"secret prompt {i}", completion="secret answer",
    )  # fmt: skip


def test_one_json_line_per_record_without_text(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.write(record())
    log.write(record(1))
    log.close()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert set(first) >= FIELDS
    assert "prompt" not in first and "completion" not in first
    assert "secret" not in (tmp_path / "audit.log").read_text()


def test_text_only_when_asked(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", include_text=True)
    log.write(record())
    assert log.read_page().records[0]["prompt"] == "secret prompt 0"
    log.close()


def test_rotation_by_size_and_reading_across_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=2048, backups=3)
    for i in range(40):
        log.write(AuditRecord(endpoint="/v1/completions", status=200, request_id=f"r{i}"))
    assert (tmp_path / "audit.log.1").exists()
    newest = log.read_page(limit=10).records
    assert [r["request_id"] for r in newest] == [f"r{i}" for i in range(30, 40)]
    everything = log.read_page(limit=1000)
    ids = [int(r["request_id"][1:]) for r in everything.records]
    assert ids == sorted(ids) and ids[-1] == 39 and len(ids) < 40  # oldest rotated away
    assert everything.next_cursor is None
    log.close()


def ids_of(page: Page) -> list[int]:
    return [int(r["request_id"][1:]) for r in page.records]


def test_paging_back_through_rotated_files_sees_every_record_once(tmp_path: Path) -> None:
    """Issue 15, item 12: GET /v1/audit pages by cursor; cursors survive new writes and
    rotation (they name a file by inode)."""
    log = AuditLog(tmp_path / "audit.log", max_bytes=4096, backups=20)
    for i in range(100):
        log.write(AuditRecord(endpoint="/v1/completions", status=200, request_id=f"r{i}"))
    assert (tmp_path / "audit.log.2").exists()
    page = log.read_page(limit=7)
    seen = ids_of(page)
    assert seen == list(range(93, 100))
    for i in range(100, 160):  # written while an auditor pages: rotates the files under it
        log.write(AuditRecord(endpoint="/v1/completions", status=200, request_id=f"r{i}"))
    while page.next_cursor is not None:
        page = log.read_page(limit=7, cursor=page.next_cursor)
        assert 0 < len(page.records) <= 7
        seen = ids_of(page) + seen
    assert seen == list(range(100))
    log.close()


def test_a_page_reads_a_bounded_amount_however_big_the_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    line = '{"endpoint":"/v1/completions","status":200}\n'
    path.write_text(line * 200_000)  # ~9 MB
    with path.open("rb") as f:
        lines, start, read = lines_before(f, path.stat().st_size, 100, PAGE_BYTES)
    assert len(lines) == 100 and start == path.stat().st_size - 100 * len(line)
    assert read <= 64 << 10  # one block, not the file
    with path.open("rb") as f:  # even a huge limit stops at PAGE_BYTES
        lines, _, read = lines_before(f, path.stat().st_size, 10**9, PAGE_BYTES)
    assert read <= PAGE_BYTES and len(lines) >= read // len(line) - 1


def test_a_cursor_into_a_deleted_file_or_garbage_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=1024, backups=1)
    for i in range(10):
        log.write(AuditRecord(endpoint="/v1/x", request_id=f"r{i}"))
    page = log.read_page(limit=2)
    for i in range(200):  # rotates the cursor's file away
        log.write(AuditRecord(endpoint="/v1/x", request_id=f"s{i}"))
    with pytest.raises(CursorExpiredError, match="rotated past"):
        log.read_page(limit=2, cursor=page.next_cursor)
    with pytest.raises(CursorExpiredError, match="not an audit cursor"):
        log.read_page(cursor="../../etc/passwd")
    log.close()


def test_a_line_torn_by_a_crash_does_not_break_reading(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.write(record())
    log.close()
    with (tmp_path / "audit.log").open("a") as f:
        f.write('{"endpoint": "/v1/compl')
    log = AuditLog(tmp_path / "audit.log")  # the restarted server
    log.write(record(1))
    assert len(log.read_page().records) == 2
    log.close()
