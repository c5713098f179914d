"""The control plane's components, their flags and ports, and what `up` prepares for them."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

from .api import Api, kubeconfig
from .config import (
    COMPONENT_QPS,
    COMPONENT_TIMEOUT_S,
    GPU_NODES,
    POD_CIDR,
    SERVICE_CIDR,
    ClusterError,
    build,
    versions,
)
from .nodes import kwok_stages, kwok_storage_class, node_manifest, nodes_ready
from .pki import write_certificates
from .processes import Component, wait_for


@dataclass(frozen=True)
class Layout:
    """Where everything of one cluster lives: binaries, run dir, certificates, ports."""

    run_dir: Path
    bin_dir: Path
    kwok_stages: Path
    ports: dict[str, int]
    # Where the API server listens: loopback, or with a real node the bridge address, which its
    # pods reach through the kubernetes Service (the operator's pod among them).
    address: str = "127.0.0.1"

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
        return f"https://{self.address}:{self.ports['kube-apiserver']}"

    @property
    def real_node(self) -> bool:
        return self.address != "127.0.0.1"

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
    """The five processes in start order; the comments beside the flags say why each is set."""
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
                f"--bind-address={at.address}",
                f"--advertise-address={at.address}",
                *serving,
                f"--client-ca-file={at.ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={at.server}/",
                f"--service-account-key-file={at.pki / 'sa.pub'}",
                f"--service-account-signing-key-file={at.pki / 'sa.key'}",
                f"--token-auth-file={at.run_dir / 'tokens.csv'}",
                *apiserver_node_flags(at),
                *aggregation_flags(at),
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


def apiserver_node_flags(at: Layout) -> list[str]:
    if not at.real_node:
        # The `kubernetes` Service would point at 127.0.0.1, which Endpoints refuse (and log
        # every 10 s); without a real node nothing in-cluster reaches the API server.
        return ["--endpoint-reconciler-type=none"]
    return [
        # logs, exec and port-forward: the kubelet trusts only this client certificate.
        f"--kubelet-client-certificate={at.pki / 'kubelet-client.crt'}",
        f"--kubelet-client-key={at.pki / 'kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def aggregation_flags(at: Layout) -> list[str]:
    """The aggregation layer, so that an extension API server (prometheus-adapter serving
    custom.metrics.k8s.io for the HPA) can be registered with an APIService; harmless unused."""
    return [
        f"--requestheader-client-ca-file={at.ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={at.pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={at.pki / 'front-proxy-client.key'}",
    ]


def prepare(
    run_dir: Path, skip_build: bool, address: str = "127.0.0.1"
) -> tuple[Layout, dict[str, Any]]:
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
        address,
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
        "bin_dir": str(bin_dir),
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
