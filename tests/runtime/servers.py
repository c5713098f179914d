"""Real `deepseek-runtime serve` processes for the runtime suite, on free ports."""

from __future__ import annotations

import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deepseek_runtime.security import hash_key

KEYS = {"admin": "sk-test-admin", "inference": "sk-test-app", "auditor": "sk-test-audit"}
START_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_keys(directory: Path) -> Path:
    path = directory / "keys.yaml"
    path.write_text("".join(
        f"- {{name: {role}-key, role: {role}, sha256: '{hash_key(key)}'}}\n"
        for role, key in KEYS.items()
    ))  # fmt: skip
    return path


def auth(role: str) -> dict[str, str]:
    # Lower case: gRPC metadata keys must be, and HTTP does not mind.
    return {"authorization": f"Bearer {KEYS[role]}"}


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepseek_runtime.cli", "serve", *args]


def run_to_exit(args: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """For servers that must refuse to start: their exit code and everything they printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)


@dataclass
class RuntimeServer:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    triton_http: int
    triton_grpc: int
    triton_metrics: int
    scheme: str = "http"
    ca: Path | None = None  # the trustme CA that signed an HTTPS server's certificate
    extra: dict[str, Path] = field(default_factory=dict)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else False

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.verify, timeout=60, **kwargs)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url("/ready"), verify=self.verify, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not ready after {timeout_s} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def stop(self, timeout_s: float = 90.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(workdir: Path, *args: str, wait: bool = True) -> RuntimeServer:
    """`serve` on free ports (OpenAI + the three Triton ports); waits for /ready."""
    ports = [free_port() for _ in range(4)]
    log = workdir / f"server-{ports[0]}.log"
    argv = serve_command(
        "--port", str(ports[0]), "--triton-http-port", str(ports[1]),
        "--triton-grpc-port", str(ports[2]), "--triton-metrics-port", str(ports[3]), *args,
    )  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    tls = "--tls-cert" in args
    server = RuntimeServer(proc, log, *ports, scheme="https" if tls else "http")
    if tls:
        server.ca = workdir / "ca.pem"
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


def grpc_stream_responses(
    server: RuntimeServer,
    model: str,
    inputs: list[Any],
    headers: dict[str, str] | None = None,
    started: threading.Event | None = None,
    timeout_s: float = 120.0,
) -> list[Any]:
    """One tritonclient gRPC stream, read up to Triton's empty final response (which is not
    returned); `started` is set at the first response. Errors from the server are raised."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.triton_grpc}")
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)),
                        headers=headers)  # fmt: skip
    client.async_stream_infer(model, inputs, enable_empty_final_response=True)
    responses = []
    try:
        while True:
            result, error = results.get(timeout=timeout_s)
            if error is not None:
                raise error
            if result.get_response().parameters["triton_final_response"].bool_param:
                return responses
            responses.append(result)
            if started is not None:
                started.set()
    finally:
        client.stop_stream()
        client.close()
