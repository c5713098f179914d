"""The real node: containerd, runc, the CNI bridge, a kubelet and kube-proxy from the control
plane's own Kubernetes module, so that pods really run (the kwok nodes run nothing).

Traffic stays on this machine: pods sit on a bridge of their own whose gateway address is the
node's; the host does not forward (net.ipv4.ip_forward stays as it is, off here), so nothing a pod
sends is routed anywhere but the bridge and this host; the Service range is routed to the bridge
and kwok's fake pod range to a blackhole, so a packet to an address nothing answers never follows
the default route out. One real node per machine: the bridge and containerd's image store are
shared. `down` undoes everything: processes by pid, containers, mounts, routes, rules, bridge.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

from . import netpol
from .api import Api, probe
from .config import (
    BRIDGE,
    COMPONENT_TIMEOUT_S,
    NODE_CIDR,
    NODE_IP,
    POD_CIDR,
    REAL_NODE,
    SERVICE_CIDR,
    ClusterError,
    log,
)
from .images import CACHE, load
from .node_config import (
    cni_conflist,
    containerd_toml,
    gpu_capacity_patch,
    kube_proxy_config,
    kubelet_args,
    kubelet_config,
)
from .processes import Component, stop_pids, wait_for
from .state import recorded_components

NODE_READY_TIMEOUT_S = 120.0
PORT_NAMES = (
    "kubelet",
    "kubelet-healthz",
    "kube-proxy-healthz",
    "kube-proxy-metrics",
    netpol.HEALTH_PORT,
)
TOOLS = ("containerd", "runc", "ctr", "buildah", "mmdebstrap", "iptables", "ip", *netpol.TOOLS)


def missing_tools() -> list[str]:
    """What hack/node-packages.sh installs, if this machine lacks it."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def bridge_up() -> None:
    """The bridge before anything else: the API server and the kubelet listen on its address."""
    if run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    addresses = run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE).stdout
    if f" {NODE_IP}/" not in addresses:
        run("ip", "addr", "add", f"{NODE_IP}/{NODE_CIDR.split('/')[1]}", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    run("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)
    run("ip", "route", "replace", "blackhole", POD_CIDR)


def bridge_down() -> None:
    run("ip", "route", "del", "blackhole", POD_CIDR, check=False)
    run("ip", "link", "del", BRIDGE, check=False)  # takes the Service route with it


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)  # innermost first


def unmount_under(path: Path) -> None:
    for point in mounts_under(path):
        run("umount", "--lazy", point, check=False)


@dataclass(frozen=True)
class NodeLayout:
    run_dir: Path
    bin_dir: Path
    ports: dict[str, int]

    @property
    def dir(self) -> Path:
        return self.run_dir / "node"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def component(self, name: str, argv: list[str], health_url: str = "") -> Component:
        return Component(name, argv, health_url, self.run_dir / f"{name}.log")


def layout(run_dir: Path, bin_dir: Path) -> NodeLayout:
    return NodeLayout(
        run_dir, bin_dir, dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    )


def write_configs(at: NodeLayout, pause: str, ca: Path, kubeconfig: Path) -> None:
    at.dir.mkdir(parents=True, exist_ok=True)
    (at.dir / "cni").mkdir(exist_ok=True)
    store = CACHE / "containerd"
    (at.dir / "containerd.toml").write_text(
        containerd_toml(store, at.dir / "containerd-state", at.socket, pause, at.dir / "cni")
    )
    (at.dir / "cni" / "10-deepseek.conflist").write_text(
        json.dumps(cni_conflist(at.dir / "cni-ipam"), indent=2)
    )
    kubelet = kubelet_config(
        at.run_dir, at.socket, ca, at.ports["kubelet"], at.ports["kubelet-healthz"]
    )
    (at.dir / "kubelet.json").write_text(json.dumps(kubelet, indent=2))
    proxy = kube_proxy_config(
        kubeconfig, at.ports["kube-proxy-healthz"], at.ports["kube-proxy-metrics"]
    )
    (at.dir / "kube-proxy.json").write_text(json.dumps(proxy, indent=2))


def components(at: NodeLayout, kubeconfig: Path) -> list[Component]:
    kubelet = kubelet_args(at.run_dir, at.dir / "kubelet.json", kubeconfig)
    return [
        at.component("containerd", ["containerd", "--config", str(at.dir / "containerd.toml")]),
        at.component(
            "kubelet",
            [str(at.bin_dir / "kubelet"), *kubelet],
            f"http://127.0.0.1:{at.ports['kubelet-healthz']}/healthz",
        ),
        at.component(
            "kube-proxy",
            [str(at.bin_dir / "kube-proxy"), f"--config={at.dir / 'kube-proxy.json'}"],
            f"http://127.0.0.1:{at.ports['kube-proxy-healthz']}/healthz",
        ),
    ]  # fmt: skip


def ctr(socket: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ctr", "--address", str(socket), "--namespace", "k8s.io", *args, check=check)


def wait_containerd(item: Component, socket: Path) -> None:
    wait_for(
        "containerd's socket",
        lambda: ctr(socket, "version", check=False).returncode == 0,
        COMPONENT_TIMEOUT_S,
        item,
    )


def node_ready(api: Api) -> bool:
    node = api.request("GET", f"/api/v1/nodes/{REAL_NODE}")
    conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
    return conditions.get("Ready") == "True"


def advertise_gpus(api: Api, kubelet: Component) -> None:
    wait_for(f"node {REAL_NODE} Ready", lambda: node_ready(api), NODE_READY_TIMEOUT_S, kubelet)
    api.request(
        "PATCH",
        f"/api/v1/nodes/{REAL_NODE}/status",
        gpu_capacity_patch(),
        content_type="application/json-patch+json",
    )

    def advertised() -> bool:
        node = api.request("GET", f"/api/v1/nodes/{REAL_NODE}")
        return bool(node["status"].get("allocatable", {}).get("nvidia.com/gpu"))

    wait_for("the real node's nvidia.com/gpu", advertised, COMPONENT_TIMEOUT_S, kubelet)


def start(
    at: NodeLayout,
    images: dict[str, str],
    api: Api,
    kubeconfig: Path,
    launch: Callable[[Component], None],
) -> None:
    containerd, kubelet, kube_proxy = components(at, kubeconfig)
    launch(containerd)
    wait_containerd(containerd, at.socket)
    remove_containers(at.socket)  # a previous run that never got its `down`
    for ref in images.values():
        load(ref, at.socket)
    launch(kubelet)
    launch(kube_proxy)
    for item in (kubelet, kube_proxy):
        wait_for(
            f"{item.name} /healthz",
            functools.partial(probe, item.health_url, None),
            COMPONENT_TIMEOUT_S,
            item,
        )
    advertise_gpus(api, kubelet)
    # The policy agent last: it reads its node's address from the registered Node object.
    agent = netpol.component(at.run_dir, kubeconfig, at.ports[netpol.HEALTH_PORT])
    launch(agent)
    netpol.wait_ready(agent)


def remove_containers(socket: Path) -> None:
    """Every task and container in containerd's k8s.io namespace (all this node's pods), so
    that no shim or pod process outlives the cluster."""
    tasks = ctr(socket, "tasks", "list", "--quiet", check=False).stdout.split()
    for task in tasks:
        ctr(socket, "tasks", "kill", "--signal", "SIGKILL", task, check=False)
    deadline = time.monotonic() + 10
    for task in tasks:
        while ctr(socket, "tasks", "delete", task, check=False).returncode != 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    for container in ctr(socket, "containers", "list", "--quiet", check=False).stdout.split():
        ctr(socket, "containers", "delete", container, check=False)


# What the kubelet itself adds (kube-proxy --cleanup removes only kube-proxy's own chains).
KUBELET_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "mangle": ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"),
}


def remove_kubelet_rules() -> None:
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table, chains in KUBELET_CHAINS.items():
            for chain in chains:
                for hook in ("INPUT", "OUTPUT"):
                    run(tool, "-t", table, "-D", hook, "-j", chain, check=False)
                run(tool, "-t", table, "-F", chain, check=False)
                run(tool, "-t", table, "-X", chain, check=False)


def kill_leftover_shims(socket: Path) -> None:
    """Shims re-parent to init: find ours by the containerd address on their command line."""
    marker = str(socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and marker in cmdline:
                os.kill(int(proc.name), signal.SIGKILL)


def stop_recorded(state: dict[str, Any], name: str) -> None:
    stop_pids([entry for entry in recorded_components(state) if entry[0] == name])


def down(run_dir: Path, state: dict[str, Any], bin_dir: Path | None) -> None:
    """Kubelet first (it would restart what we remove), the policy agent and its rules, then the
    pods, kube-proxy and its rules, containerd, and what the kernel still holds: mounts, the
    bridge, the routes."""
    node = state.get("real_node")
    if not node:
        return
    socket = Path(node["socket"])
    stop_recorded(state, "kubelet")
    stop_recorded(state, netpol.NAME)  # before its rules go, or its next sync puts them back
    netpol.remove_rules()
    netpol.restore_bridge_filtering(node.get("bridge_nf_call_iptables", ""))
    if socket.exists():
        remove_containers(socket)
    stop_recorded(state, "kube-proxy")
    if bin_dir is not None and (bin_dir / "kube-proxy").exists():
        run(str(bin_dir / "kube-proxy"), "--cleanup", check=False)
    remove_kubelet_rules()
    stop_recorded(state, "containerd")
    kill_leftover_shims(socket)
    unmount_under(run_dir)
    bridge_down()
    log(f"real node {REAL_NODE} removed")
