"""The audit log: JSON lines, no text unless asked, rotation, reading back."""

from __future__ import annotations

import json
from pathlib import Path

from deepseek_runtime.guards.audit import AuditLog, AuditRecord

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
    assert log.read()[0]["prompt"] == "secret prompt 0"
    log.close()


def test_rotation_by_size_and_reading_across_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=2048, backups=3)
    for i in range(40):
        log.write(AuditRecord(endpoint="/v1/completions", status=200, request_id=f"r{i}"))
    assert (tmp_path / "audit.log.1").exists()
    newest = log.read(limit=10)
    assert [r["request_id"] for r in newest] == [f"r{i}" for i in range(30, 40)]
    everything = log.read(limit=1000)
    ids = [int(r["request_id"][1:]) for r in everything]
    assert ids == sorted(ids) and ids[-1] == 39 and len(ids) < 40  # oldest rotated away
    log.close()


def test_a_line_torn_by_a_crash_does_not_break_reading(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.write(record())
    log.close()
    with (tmp_path / "audit.log").open("a") as f:
        f.write('{"endpoint": "/v1/compl')
    log = AuditLog(tmp_path / "audit.log")  # the restarted server
    log.write(record(1))
    assert len(log.read()) == 2
    log.close()
