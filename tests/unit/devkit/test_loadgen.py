"""hack/devkit/loadgen.py and episode.py: every request is counted and opens its own connection
(so kube-proxy can spread it), and the sampler records what its callables saw."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from devkit.episode import Sampler
from devkit.loadgen import Load

REPLY = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "hi"}}
    ],
}


class Chat(BaseHTTPRequestHandler):
    """An OpenAI chat endpoint that fails every third request with a 500."""

    protocol_version = "HTTP/1.1"  # keep-alive allowed: the client must be the one to refuse it
    peers: set[tuple[str, int]] = set()
    served = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with Chat.lock:
            Chat.peers.add(self.client_address)
            Chat.served += 1
            fail = Chat.served % 3 == 0
        body = json.dumps({"error": {"message": "boom"}} if fail else REPLY).encode()
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Chat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_load_counts_every_outcome_on_fresh_connections(chat_server: str) -> None:
    load = Load(chat_server, concurrency=4, timeout=10).start()
    deadline = time.monotonic() + 30
    while Chat.served < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    tally = load.stop()
    assert tally.ok + tally.failed == Chat.served >= 12
    assert tally.failed == Chat.served // 3, tally.errors  # the server's own failures, counted
    assert any("InternalServerError" in error for error in tally.errors)
    # No keep-alive: one client port per request, so a Service spreads them over its pods.
    assert len(Chat.peers) == Chat.served


def test_sampler_records_and_skips_failed_reads() -> None:
    calls = iter(range(100))

    def replicas() -> tuple[int, int]:
        n = next(calls)
        if n == 1:
            raise RuntimeError("API hiccup")
        return (2, 1) if n >= 3 else (1, 1)

    sampler = Sampler(replicas, lambda: {"pod-a": 3.0}, interval=0.01).start()
    time.sleep(0.3)
    samples = sampler.stop()
    assert len(sampler.errors) == 1 and "API hiccup" in sampler.errors[0]
    assert samples[0].desired == 1 and samples[-1].desired == 2
    assert all(s.queue == {"pod-a": 3.0} for s in samples)
    assert [s.t for s in samples] == sorted(s.t for s in samples)
