#!/usr/bin/env python3
"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, controller-manager,
scheduler and kwok, with two fake GPU nodes. See docs/local-control-plane.md for the why.

    python hack/cluster.py up      # idempotent: reuses a healthy cluster in the run dir
    python hack/cluster.py down    # stops only the pids recorded in the run dir, removes it
    python hack/cluster.py status  # exit 0 when the recorded cluster answers /readyz
    python hack/cluster.py env     # prints `export KUBECONFIG=...`

The run dir is DEEPSEEK_CLUSTER_DIR (default <repo>/.run/cluster). No kubelet runs, so no
container ever runs: kwok marks pods on the fake nodes Running/Ready.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HACK = REPO / "hack"
DEFAULT_DIR = REPO / ".run" / "cluster"

# 10.0.0.0/24 (the doc's value) holds 254 addresses: too few once the benchmark makes 300
# Services and 300 pods, so services and pods each get a /16 of their own.
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.0.0.0/16"
APISERVER_TIMEOUT_S = 120.0  # two cores, a cold page cache and 60+ API groups to install
COMPONENT_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
# Client-side rate limits default to 20-50 qps; the benchmark creates thousands of objects.
COMPONENT_QPS = ("--kube-api-qps=500", "--kube-api-burst=1000")

GPU_NODES: tuple[tuple[str, str, int], ...] = (
    # name, nvidia.com/gpu.product as NVIDIA's GPU feature discovery writes it, memory MiB
    ("gpu-node-1", "NVIDIA-H100-80GB-HBM3", 81559),
    ("gpu-node-2", "NVIDIA-A100-SXM4-80GB", 81920),
)
KWOK_STAGES = (  # kwok's own "fast" stages plus kwok-volume provisioning, from its module
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
    "kustomize/stage/volume/fast/pvc-provision.yaml",
    "kustomize/stage/volume/fast/pv-bind.yaml",
    "kustomize/stage/volume/fast/pv-delete.yaml",
    "kustomize/stage/volume/fast/pvc-delete.yaml",
)


class ClusterError(RuntimeError):
    """The control plane did not come up; the message carries the failing component's log."""


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Versions and binaries (hack/versions.env is the single source)


def versions() -> dict[str, str]:
    script = (
        f'source "{HACK}/versions.env" && '
        'printf "%s\\n" "K8S_VERSION=$K8S_VERSION" "ETCD_VERSION=$ETCD_VERSION" '
        '"KWOK_VERSION=$KWOK_VERSION" "HELM_VERSION=$HELM_VERSION" "BIN=$(control_plane_bin)"'
    )
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def control_plane_bin() -> Path:
    return Path(versions()["BIN"])


def build() -> None:
    """Runs the idempotent build; it is silent when every binary is already cached."""
    result = subprocess.run(["bash", str(HACK / "build-control-plane.sh")], check=False)
    if result.returncode != 0:
        raise ClusterError(f"hack/build-control-plane.sh failed with exit code {result.returncode}")


def kwok_stages(bin_dir: Path, kwok_version: str) -> Path:
    """kwok ships no default stages; kwokctl hands it these. Assembled once beside the
    binaries from kwok's own Go module (never copied into the repository)."""
    target = bin_dir.parent / "kwok-stages.yaml"
    if target.exists():
        return target
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{kwok_version}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=bin_dir,  # outside any module, so no go.mod around us changes the answer
    )
    module_dir = Path(json.loads(out.stdout)["Dir"])
    documents = [(module_dir / stage).read_text() for stage in KWOK_STAGES]
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n---\n".join(documents))
    tmp.replace(target)
    return target


# ---------------------------------------------------------------------------------------------
# Certificates


def write_certificates(pki: Path) -> None:
    """A CA, one serving certificate for every component and a service-account key pair.

    SKI/AKI and critical basicConstraints/keyUsage are set so Python's strict X.509
    verification (the default from 3.13) accepts the chain, not only Go's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=30)

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deepseek-local-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    serving_key = ec.generate_private_key(ec.SECP256R1())
    service_ip = ipaddress.IPv4Network(SERVICE_CIDR)[1]  # kubernetes.default's IP
    names: list[x509.GeneralName] = [
        x509.DNSName(name)
        for name in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(service_ip),
    ]
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(serving_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    # RSA: every Kubernetes version signs and verifies service-account tokens with it.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(pem_key(ca_key))
    (pki / "serving.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "serving.key").write_bytes(pem_key(serving_key))
    (pki / "sa.key").write_bytes(pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key in ("ca.key", "serving.key", "sa.key"):
        (pki / key).chmod(0o600)


# ---------------------------------------------------------------------------------------------
# Processes


def free_ports(count: int) -> list[int]:
    """Asks the kernel for `count` distinct free ports, holding all open until all are known."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: with the pid, it names one process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has already exited
        return None
    return fields[19]


@dataclass
class Component:
    name: str
    argv: list[str]
    health_url: str
    log_path: Path
    pid: int = 0
    start_time: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            # A session of its own: a Ctrl-C meant for the caller (demo, pytest) does not reach
            # the cluster; only `down` stops it, by pid.
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.log_path.parent,
            )
        self.pid = self.process.pid
        self.start_time = process_start_time(self.pid) or ""

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return bool(self.pid) and process_start_time(self.pid) == self.start_time

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


# ---------------------------------------------------------------------------------------------
# Talking to the API server without a client library (cluster.py must run before the venv)


@dataclass
class Api:
    server: str
    token: str
    ca_file: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.context(), timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload.decode()

    def create(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.request("POST", path, body)
        except urllib.error.HTTPError as error:
            if error.code != 409:  # already there: `up` may be finishing a half-made cluster
                raise


def probe(url: str, ca_file: Path | None, token: str | None = None) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(req, context=context, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, component: Component | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component is not None and not component.alive():
            raise ClusterError(
                f"{component.name} exited while waiting for {what}; last lines of "
                f"{component.log_path}:\n{component.log_tail()}"
            )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    tail = f"; last lines of {component.log_path}:\n{component.log_tail()}" if component else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def wait_healthy(item: Component, ca: Path) -> None:
    ca_file = ca if item.health_url.startswith("https") else None
    wait_for(
        f"{item.name} /healthz", lambda: probe(item.health_url, ca_file), COMPONENT_TIMEOUT_S, item
    )


# ---------------------------------------------------------------------------------------------
# The cluster


def node_manifest(name: str, product: str, memory_mib: int, gpus: int = 8) -> dict[str, Any]:
    """A fake GPU node that kwok keeps Ready. No taint: the operator's own pod (no GPU) must be
    able to land on it too, and tests then need no kwok toleration."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kwok-gpu",
                "type": "kwok",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/gpu.memory": str(memory_mib),
            },
        },
        "status": {
            "capacity": {
                "cpu": "64",
                "memory": "512Gi",
                "pods": "110",
                "ephemeral-storage": "1Ti",
                "nvidia.com/gpu": str(gpus),
            },
            "allocatable": {
                "cpu": "64",
                "memory": "512Gi",
                "pods": "110",
                "ephemeral-storage": "1Ti",
                "nvidia.com/gpu": str(gpus),
            },
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "kwok",
            },
        },
    }


def kwok_storage_class() -> dict[str, Any]:
    """Default StorageClass whose claims kwok's volume stages provision, so a model PVC binds."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "kwok-volume",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kwok.x-k8s.io/volume",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def nodes_ready(api: Api, names: list[str]) -> bool:
    nodes = {
        item["metadata"]["name"]: item for item in api.request("GET", "/api/v1/nodes")["items"]
    }
    for name in names:
        node = nodes.get(name)
        if node is None:
            return False
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") != "True":
            return False
        # The not-ready taint from TaintNodesByCondition goes once node lifecycle sees Ready.
        if any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", [])):
            return False
    return True


def kubeconfig(server: str, ca_file: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "deepseek-local",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "deepseek-local",
                "context": {"cluster": "deepseek-local", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "deepseek-local",
    }


def cluster_dir(path: str | None = None) -> Path:
    return Path(path or os.environ.get("DEEPSEEK_CLUSTER_DIR") or DEFAULT_DIR).resolve()


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / "state.json")


def healthy(run_dir: Path) -> bool:
    """Every recorded process is still the one we started and the API server is ready."""
    state = read_state(run_dir)
    if not state or not state.get("ready"):
        return False
    for proc in state["processes"]:
        if process_start_time(proc["pid"]) != proc["start_time"]:
            return False
    return probe(state["server"] + "/readyz", Path(state["ca_file"]), state["token"])


def recorded_components(state: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    for proc in state.get("processes", []):
        yield proc["name"], int(proc["pid"]), str(proc["start_time"])


def stop_pids(entries: list[tuple[str, int, str]], grace: float = STOP_GRACE_S) -> None:
    """Newest first, one at a time: SIGTERM, then SIGKILL if it outlives the grace period. The
    API server goes before etcd so that it can shut down cleanly instead of retrying a dead
    store. A pid is only signalled while its start time still matches the recorded one."""
    for name, pid, start in reversed(entries):
        if process_start_time(pid) != start:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process_start_time(pid) == start and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_start_time(pid) == start:
            log(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def down(run_dir: Path) -> None:
    state = read_state(run_dir)
    if state:
        stop_pids(list(recorded_components(state)))
    if run_dir.exists():
        shutil.rmtree(run_dir)
        log(f"removed {run_dir}")


@dataclass(frozen=True)
class Layout:
    """Where everything of one cluster lives: binaries, run dir, certificates, ports."""

    run_dir: Path
    bin_dir: Path
    kwok_stages: Path
    ports: dict[str, int]

    @property
    def pki(self) -> Path:
        return self.run_dir / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    def component(self, name: str, argv: list[str], health_url: str) -> Component:
        return Component(
            name, [str(self.bin_dir / name), *argv], health_url, self.run_dir / f"{name}.log"
        )


# One free port each, in this order.
PORT_NAMES = (
    "etcd",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)


def components(at: Layout) -> list[Component]:
    """The five processes, in start order, with the flags docs/local-control-plane.md gives."""
    etcd, peer, api, kcm, scheduler, kwok = (at.ports[name] for name in PORT_NAMES)
    serving = [
        f"--tls-cert-file={at.pki / 'serving.crt'}",
        f"--tls-private-key-file={at.pki / 'serving.key'}",
    ]
    common = [f"--kubeconfig={at.kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1"]
    return [
        at.component(
            "etcd",
            [
                "--name=etcd",
                f"--data-dir={at.run_dir / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=etcd=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",  # a throwaway test store: durability buys nothing here
                "--log-level=warn",
            ],
            f"http://127.0.0.1:{etcd}/health",
        ),
        at.component(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd}",
                f"--secure-port={api}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                *serving,
                f"--client-ca-file={at.ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={at.server}/",
                f"--service-account-key-file={at.pki / 'sa.pub'}",
                f"--service-account-signing-key-file={at.pki / 'sa.key'}",
                f"--token-auth-file={at.run_dir / 'tokens.csv'}",
                # The `kubernetes` Service would point at 127.0.0.1, which Endpoints refuse (and
                # log every 10 s); nothing in-cluster needs to reach the API server here.
                "--endpoint-reconciler-type=none",
                # PodSecurity stays in the default admission chain: tests prove pods are restricted.
            ],
            f"{at.server}/readyz",
        ),
        at.component(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={kcm}",
                *serving,
                f"--root-ca-file={at.ca}",
                f"--service-account-private-key-file={at.pki / 'sa.key'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                *COMPONENT_QPS,
            ],
            f"https://127.0.0.1:{kcm}/healthz",
        ),
        at.component(
            "kube-scheduler",
            [
                *common,
                f"--secure-port={scheduler}",
                *serving,
                *COMPONENT_QPS,
            ],
            f"https://127.0.0.1:{scheduler}/healthz",
        ),
        at.component(
            "kwok",
            [
                f"--kubeconfig={at.kubeconfig}",
                f"--config={at.kwok_stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{kwok}",
                # Without node leases the node lifecycle controller marks the nodes NotReady (and
                # taints them) every 50 s; kwok only renews leases when told their duration.
                "--node-lease-duration-seconds=40",
            ],
            f"http://127.0.0.1:{kwok}/healthz",
        ),
    ]


def prepare(run_dir: Path, skip_build: bool) -> tuple[Layout, dict[str, Any]]:
    """Binaries, certificates, token, ports and kubeconfig; returns the layout and the state
    that `down` will read."""
    if not skip_build:
        build()
    info = versions()
    bin_dir = Path(info["BIN"])
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        if not os.access(bin_dir / binary, os.X_OK):
            raise ClusterError(f"{bin_dir / binary} is missing: run hack/build-control-plane.sh")
    at = Layout(
        run_dir,
        bin_dir,
        kwok_stages(bin_dir, info["KWOK_VERSION"]),
        dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True)),
    )
    run_dir.mkdir(parents=True)
    write_certificates(at.pki)
    token = secrets.token_urlsafe(32)
    tokens = run_dir / "tokens.csv"
    tokens.write_text(f"{token},admin,admin-uid,system:masters\n")
    tokens.chmod(0o600)
    at.kubeconfig.write_text(json.dumps(kubeconfig(at.server, at.ca, token), indent=2))
    at.kubeconfig.chmod(0o600)
    state = {
        "server": at.server,
        "token": token,
        "ca_file": str(at.ca),
        "kubeconfig": str(at.kubeconfig),
        "versions": {k: v for k, v in info.items() if k != "BIN"},
        "ports": at.ports,
        "processes": [],
        "ready": False,
    }
    return at, state


def seed(api: Api, kwok: Component, controller_manager: Component) -> None:
    """The default StorageClass and the fake GPU nodes; waits until pods can land."""
    api.create("/apis/storage.k8s.io/v1/storageclasses", kwok_storage_class())
    for name, product, memory in GPU_NODES:
        api.create("/api/v1/nodes", node_manifest(name, product, memory))
    names = [name for name, _product, _memory in GPU_NODES]
    wait_for(
        "fake GPU nodes Ready and untainted",
        lambda: nodes_ready(api, names),
        COMPONENT_TIMEOUT_S,
        kwok,
    )
    default_sa = "/api/v1/namespaces/default/serviceaccounts/default"
    wait_for(
        "the default ServiceAccount",
        lambda: bool(api.request("GET", default_sa)),
        COMPONENT_TIMEOUT_S,
        controller_manager,
    )


def up(run_dir: Path, skip_build: bool = False) -> Path:
    if healthy(run_dir):
        log(f"already up: export KUBECONFIG={run_dir / 'kubeconfig'}")
        return run_dir / "kubeconfig"
    if run_dir.exists():
        log(f"{run_dir} holds a stopped or half-made cluster; cleaning it first")
        down(run_dir)
    started = time.monotonic()
    at, state = prepare(run_dir, skip_build)
    etcd, apiserver, controller_manager, scheduler, kwok = components(at)
    launched: list[Component] = []

    def launch(*batch: Component) -> None:
        for item in batch:
            item.start()
            launched.append(item)
            state["processes"].append(
                {"name": item.name, "pid": item.pid, "start_time": item.start_time}
            )
            write_state(run_dir, state)  # record each pid at once: `down` must find it
            log(f"started {item.name} (pid {item.pid}), log {item.log_path}")

    try:
        launch(etcd)
        wait_healthy(etcd, at.ca)
        launch(apiserver)
        token = state["token"]
        wait_for(
            "kube-apiserver /readyz",
            lambda: probe(apiserver.health_url, at.ca, token),
            APISERVER_TIMEOUT_S,
            apiserver,
        )
        log(f"kube-apiserver ready after {time.monotonic() - started:.1f}s")
        launch(controller_manager, scheduler, kwok)
        for item in (controller_manager, scheduler, kwok):
            wait_healthy(item, at.ca)
        seed(Api(at.server, token, at.ca), kwok, controller_manager)
    except BaseException as error:
        # Stop what we started but keep the run dir: its logs say what went wrong.
        stop_pids([(c.name, c.pid, c.start_time) for c in launched])
        for item in launched:
            if item.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    item.process.wait(timeout=1)
        if isinstance(error, urllib.error.HTTPError):
            raise ClusterError(f"API call failed: {error} {error.read().decode()}") from error
        raise
    state["ready"] = True
    write_state(run_dir, state)
    (run_dir / "env").write_text(f"export KUBECONFIG={at.kubeconfig}\n")
    log(f"up in {time.monotonic() - started:.1f}s: export KUBECONFIG={at.kubeconfig}")
    return at.kubeconfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", help="run dir (default: $DEEPSEEK_CLUSTER_DIR or .run/cluster)")
    parser.add_argument("--skip-build", action="store_true", help="do not run the build first")
    args = parser.parse_args(argv)
    run_dir = cluster_dir(args.dir)
    try:
        if args.command == "up":
            up(run_dir, skip_build=args.skip_build)
        elif args.command == "down":
            down(run_dir)
        elif args.command == "status":
            if not healthy(run_dir):
                log(f"no healthy cluster in {run_dir}")
                return 1
            log(f"healthy: export KUBECONFIG={run_dir / 'kubeconfig'}")
        else:
            print(f"export KUBECONFIG={run_dir / 'kubeconfig'}")
    except ClusterError as error:
        log(f"FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
