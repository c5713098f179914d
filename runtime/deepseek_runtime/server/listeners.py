"""The runtime's two HTTP ports, served by one uvicorn server: the OpenAI port (API, probes,
/metrics) and the metrics port (/metrics alone, so a NetworkPolicy can let Prometheus in without
opening the API to it). One server means one drain, one set of signal handlers and one TLS
context for both; each request goes to the application of the port it came in on.

The sockets are bound here, before the model loads, so a port already taken stops `serve` at
once with the setting's flag in the message.
"""

from __future__ import annotations

import socket

from starlette.types import ASGIApp, Receive, Scope, Send

from deepseek_runtime.doors.openai.app import build_app, build_metrics_app
from deepseek_runtime.doors.services import Services
from deepseek_runtime.server.flags import flag_name
from deepseek_runtime.server.startup import StartupError


def listen(host: str, port: int, setting: str) -> socket.socket:
    """A listening TCP socket on host:port (0: one the kernel picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {host}:{port} ({flag_name(setting)}): {why}") from exc


def bound_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


class ByPort:
    """ASGI: each request to the application of the local port its connection reached."""

    def __init__(self, apps: dict[int, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn sets "server" to the connection's local (host, port) on every TCP socket.
        await self.apps[scope["server"][1]](scope, receive, send)


class Listeners:
    """The bound sockets of the OpenAI and metrics ports, and the application serving both."""

    def __init__(self, host: str, port: int, metrics_port: int) -> None:
        self.api = listen(host, port, "port")
        try:
            self.metrics = listen(host, metrics_port, "metrics_port")
        except StartupError:
            self.api.close()
            raise

    @property
    def sockets(self) -> list[socket.socket]:
        return [self.api, self.metrics]

    def app(self, services: Services) -> ByPort:
        return ByPort({
            bound_port(self.api): build_app(services),
            bound_port(self.metrics): build_metrics_app(services),
        })  # fmt: skip

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
