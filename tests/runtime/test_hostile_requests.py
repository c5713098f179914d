"""Malformed and hostile requests against a real server: 4xx JSON, never 5xx, still serving."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from devkit.runtime_server import KEYS, RuntimeServer, auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.runtime

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "negative_data_rejection",
])  # fmt: skip


def still_serving(server: RuntimeServer) -> None:
    assert httpx.get(server.url("/ready"), timeout=10).status_code == 200
    r = httpx.post(
        server.url("/v1/chat/completions"),
        headers=auth("inference"),
        timeout=60,
        json={"messages": [{"role": "user", "content": "ok?"}], "max_tokens": 4},
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0


def test_schemathesis_with_auth(api_server: RuntimeServer, tmp_path: Path) -> None:
    """Schema-driven fuzzing of /openapi.json (positive and negative cases), auth on."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [str(schemathesis), "run", api_server.url("/openapi.json"),
         "-H", f"Authorization: Bearer {KEYS['admin']}", "--max-examples", "100",
         "--checks", CHECKS, "--request-timeout", "60",
         "--report", "json", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert report["test_cases"]["generated"] >= 1000, report["test_cases"]
    assert report["test_cases"]["with_failures"] == 0
    still_serving(api_server)


PATHS = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/x", "/v1/audit",
         "/metrics", "/health", "/ready", "/openapi.json", "/v1/%00", "/../../etc/passwd",
         "/v1/completions?x=" + "y" * 3000]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
BODY_KEYS = ["prompt", "messages", "max_tokens", "stream", "temperature", "stop", "n", "model",
             "role", "content", "stream_options", "top_p", "seed"]  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=600),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(BODY_KEYS), JSON, max_size=6).map(
        lambda v: json.dumps(v).encode()
    ),
)
# Raw header bytes (anything but CR/LF, which would end the header): sent over a plain socket,
# because well-behaved clients refuse to send most of them.
HEADER_VALUES = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
HEADERS = st.fixed_dictionaries(
    {b"authorization": st.sampled_from([f"Bearer {KEYS['admin']}".encode(), b"Bearer", b"",
                                        f"Bearer {KEYS['auditor']}".encode(), b"Basic Zm9v",
                                        b"Bearer " + b"x" * 5000])
     | HEADER_VALUES.map(lambda v: b"Bearer " + v)},
    optional={b"content-type": st.sampled_from([b"application/json", b"text/plain",
                                                b"multipart/form-data; boundary=x"])
              | HEADER_VALUES,
              b"accept": HEADER_VALUES, b"x-\xff\x00": HEADER_VALUES,
              b"content-length": st.sampled_from([b"-1", b"99999999999", b"abc", b"0"])},
)  # fmt: skip


def raw_request(port: int, method: str, path: str, headers: dict[bytes, bytes],
                body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:  # fmt: skip
    head = [f"{method} {path} HTTP/1.1".encode(), b"host: 127.0.0.1", b"connection: close"]
    if b"content-length" not in headers:
        head.append(b"content-length: %d" % len(body))
    head += [name + b": " + value for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    raw_headers, _, payload = rest.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in raw_headers.split(b"\r\n") if line)
    if fields.get(b"transfer-encoding") == b"chunked":
        payload = dechunk(payload)
    return int(status_line.split()[1]), fields, payload


def dechunk(payload: bytes) -> bytes:
    out = b""
    while payload:
        size, _, payload = payload.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, payload = out + payload[:n], payload[n + 2 :]
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.sampled_from(PATHS),
    headers=HEADERS,
    body=BODIES,
)
def test_hypothesis_hostile_requests(
    api_server: RuntimeServer, method: str, path: str, headers: dict[bytes, bytes], body: bytes
) -> None:
    status, fields, payload = raw_request(api_server.port, method, path, headers, body)
    assert status < 500, (status, payload[:500])
    if status >= 400 and method != "HEAD":
        if payload == b"Invalid HTTP request received.":
            return  # uvicorn's HTTP parser refused it before the app saw it: still a 400
        assert fields[b"content-type"] == b"application/json", payload[:300]
        error: Any = json.loads(payload)["error"]
        assert error["message"] and set(error) == {"message", "type", "param", "code"}


def test_still_serving_after_the_storm(api_server: RuntimeServer) -> None:
    still_serving(api_server)
