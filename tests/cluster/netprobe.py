"""Probe pods for the NetworkPolicy tests: real pods on the real node that listen on a DNS port and
another port, and that open connections on request (`kubectl exec`), so that both ends of every
checked path are pods (or a listener on the bridge address) that the test itself created.

They run the runtime image (it has python3; nothing is pulled) under the `restricted` Pod
Security Standard. Port 53 below 1024 needs no capability: the namespaced sysctl
net.ipv4.ip_unprivileged_port_start, which that standard allows, opens it to uid 10001.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from clusterkit import Kubectl, wait_until
from realnode import ON_REAL_NODE, describe_pods

DNS_PORT = 53
OTHER_PORT = 8053  # the same listener on a port that is not DNS
READY_TIMEOUT = 180.0

LISTEN = f"""
import os, signal, socket, threading
def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        conn.close()
for port in ({DNS_PORT}, {OTHER_PORT}):
    threading.Thread(target=serve, args=(port,), daemon=True).start()
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    signal.pause()
"""

# One result per target: "open", or why not ("timeout", "ConnectionRefusedError", ...); a target
# with a path is fetched over HTTP and reports its status and the vLLM-named metrics it carries.
CONNECT = """
import json, socket, sys, urllib.request
out = {}
for target in sys.argv[1:]:
    address, _, path = target.partition("/")
    host, _, port = address.rpartition(":")
    try:
        if path:
            with urllib.request.urlopen(f"http://{address}/{path}", timeout=5) as r:
                body = r.read().decode(errors="replace")
            names = {l.split("{")[0].split()[0] for l in body.splitlines() if l.startswith("vllm:")}
            out[target] = {"status": r.status, "vllm": sorted(names)}
        else:
            socket.create_connection((host, int(port)), timeout=3).close()
            out[target] = "open"
    except socket.timeout:
        out[target] = "timeout"
    except Exception as error:
        out[target] = type(error).__name__ + ": " + str(error)[:80]
print(json.dumps(out))
"""


def probe_pod(name: str, image: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "np-probe", **labels}},
        "spec": {
            **ON_REAL_NODE,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", LISTEN],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "readinessProbe": {"tcpSocket": {"port": OTHER_PORT}, "periodSeconds": 1},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@dataclass(frozen=True)
class Endpoint:
    """A pod the test can exec in: its namespace, name, container and address."""

    kubectl: Kubectl
    name: str
    container: str
    ip: str

    def connect(self, *targets: str) -> dict[str, Any]:
        result = self.kubectl(
            "exec", self.name, "-c", self.container, "--",
            "python3", "-c", CONNECT, *targets, timeout=120,
        )  # fmt: skip
        outcome: dict[str, Any] = json.loads(result.stdout)
        return outcome


def start_probes(ns: Kubectl, image: str, pods: dict[str, dict[str, str]]) -> dict[str, Endpoint]:
    """The pods (name: labels), created together, once they all listen."""
    ns.apply(*(probe_pod(name, image, labels) for name, labels in pods.items()))
    found = {}
    for name in pods:

        def ready(pod: str = name) -> dict[str, Any] | None:
            body = ns.get("pod", pod)
            conditions = (body or {}).get("status", {}).get("conditions", [])
            ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            return body if ok else None

        body = wait_until(
            ready, READY_TIMEOUT, f"probe pod {name} Ready", interval=1,
            describe=lambda: describe_pods(ns),
        )  # fmt: skip
        found[name] = Endpoint(ns, name, "probe", body["status"]["podIP"])
    return found


@contextmanager
def bridge_listener(address: str) -> Iterator[int]:
    """A TCP listener on the bridge's own address (this host), on a port outside the NodePort
    range that policies always let through: a destination the project owns, for egress denial."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((address, 0))
    server.listen(16)
    port = server.getsockname()[1]
    assert not 30000 <= port <= 32767, port
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
