"""Real `deepseek-runtime serve` processes on free ports, for the runtime suite and the
benchmarks: start, wait until ready, talk to, stop by SIGTERM.

Needs the runtime extra (httpx; tritonclient for the gRPC helper), imported at use.
"""

from __future__ import annotations

import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

# Test keys by role; a keys file (write_keys) stores only their SHA-256.
KEYS = {"admin": "sk-test-admin", "inference": "sk-test-app", "auditor": "sk-test-audit"}
START_TIMEOUT_S = 600.0


def runtime_command(*args: str) -> list[str]:
    """`deepseek-runtime ARGS` run by this interpreter (no console script needed)."""
    return [sys.executable, "-m", "deepseek_runtime", *args]


def serve_command(*args: str) -> list[str]:
    return runtime_command("serve", *args)


def run_to_exit(args: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """For commands that must end by themselves: their exit code and everything they printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)


def write_keys(directory: Path, extra: Mapping[str, tuple[str, str]] | None = None) -> Path:
    """keys.yaml with KEYS (named `<role>-key`) and `extra` ({name: (role, key)})."""
    from deepseek_runtime.guards.keys import hash_key

    entries = {f"{role}-key": (role, key) for role, key in KEYS.items()} | dict(extra or {})
    path = directory / "keys.yaml"
    path.write_text("".join(
        f"- {{name: {name}, role: {role}, sha256: '{hash_key(key)}'}}\n"
        for name, (role, key) in entries.items()
    ))  # fmt: skip
    return path


def auth(role: str) -> dict[str, str]:
    # Lower case: gRPC metadata keys must be, and HTTP does not mind.
    return {"authorization": f"Bearer {KEYS[role]}"}


@dataclass
class RuntimeServer:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    triton_http: int
    triton_grpc: int
    triton_metrics: int
    metrics: int  # the runtime's own metrics port: /metrics alone
    argv: list[str] = field(default_factory=list)
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

    @property
    def metrics_url(self) -> str:
        """/metrics on the metrics port (the scheme is the API port's: TLS covers both)."""
        return f"{self.scheme}://127.0.0.1:{self.metrics}/metrics"

    def client(self, **kwargs: Any) -> Any:
        import httpx

        return httpx.Client(base_url=self.base_url, verify=self.verify, timeout=60, **kwargs)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait_ready(
        self, timeout_s: float = START_TIMEOUT_S, triton_models: tuple[str, ...] = ()
    ) -> None:
        """Until /ready answers 200 (and each of `triton_models` is ready on Triton's HTTP)."""
        import httpx

        urls = [self.url("/ready")]
        urls += [f"http://127.0.0.1:{self.triton_http}/v2/models/{m}/ready" for m in triton_models]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if all(httpx.get(u, verify=self.verify, timeout=2).status_code == 200
                       for u in urls):  # fmt: skip
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not ready after {timeout_s} s:\n{self.tail()}")

    def stop(self, timeout_s: float = 90.0) -> int:
        """SIGTERM (the server drains), then SIGKILL if it has not exited in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(
    workdir: Path,
    *args: str,
    wait: bool = True,
    triton_models: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> RuntimeServer:
    """`serve ARGS` on free ports (OpenAI, metrics, the three Triton ports), its output in a log
    file in `workdir`; waits for readiness unless `wait` is False. HTTPS when --tls-cert is given,
    trusting `workdir/ca.pem`."""
    ports = free_ports(5)
    log = workdir / f"server-{ports[0]}.log"
    argv = serve_command(
        "--port", str(ports[0]), "--triton-http-port", str(ports[1]),
        "--triton-grpc-port", str(ports[2]), "--triton-metrics-port", str(ports[3]),
        "--metrics-port", str(ports[4]), *args,
    )  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    tls = "--tls-cert" in args
    server = RuntimeServer(proc, log, *ports, argv=argv, scheme="https" if tls else "http")
    if tls:
        server.ca = workdir / "ca.pem"
    if wait:
        try:
            server.wait_ready(triton_models=triton_models)
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
