"""The real node's NetworkPolicy agent: kube-router, running only its firewall controller.

The bridge CNI plugin enforces nothing. sigs.k8s.io/kube-network-policies, the upstream reference
agent, was tried first and cannot run on this kind of machine: it hands packets to userspace with
nftables' `queue` expression, and the kernel is built without it (CONFIG_NFT_QUEUE unset, no
modules to load), so the kernel refuses its whole ruleset ("netlink receive: no such file or
directory"). kube-router's controller needs iptables and ipset, which this kernel has (xt_set,
physdev, conntrack, NFLOG). Pods on one bridge are switched, not routed: br_netfilter with
net.bridge.bridge-nf-call-iptables=1 passes their frames through the FORWARD chain, where
kube-router's `--physdev-is-bridged` rules see them.

A host process with the admin kubeconfig, like the kubelet, stopped by pid. It leaves its chains
and sets behind when it stops; `remove_rules` takes them away (kube-router's own
`--cleanup-config` would also flush IPVS and routes that are not the cluster's).
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from pathlib import Path

from .api import probe
from .config import (
    COMPONENT_TIMEOUT_S,
    REAL_NODE,
    SERVICE_CIDR,
    ClusterError,
    cache_bin,
    log,
    run_build,
)
from .processes import Component, wait_for

NAME = "kube-router"
HEALTH_PORT = "kube-router-health"
TOOLS = ("ipset", "iptables-save", "iptables-restore")
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
# What kube-router v2 names its filter chains and ipsets (pkg/controllers/netpol).
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-")


def binary() -> Path:
    return cache_bin("kube_router_bin") / NAME


def build() -> None:
    """Idempotent and quiet when the binary is cached (hack/build-kube-router.sh)."""
    run_build("build-kube-router.sh")


def bridge_filtering() -> str:
    """Turns on iptables for bridged frames and returns the previous value, which `down` puts
    back. Without it, pod-to-pod traffic on the one bridge never meets a NetworkPolicy rule."""
    if not BRIDGE_NF.exists():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not BRIDGE_NF.exists():
        raise ClusterError(
            f"{BRIDGE_NF} is missing: NetworkPolicy on one bridge needs br_netfilter "
            "(`modprobe br_netfilter`, or a kernel built with CONFIG_BRIDGE_NETFILTER)"
        )
    previous = BRIDGE_NF.read_text().strip()
    if previous != "1":
        BRIDGE_NF.write_text("1\n")
    return previous


def restore_bridge_filtering(previous: str) -> None:
    if previous and BRIDGE_NF.exists() and BRIDGE_NF.read_text().strip() != previous:
        BRIDGE_NF.write_text(f"{previous}\n")


def argv(kube_router: Path, kubeconfig: Path, health_port: int) -> list[str]:
    return [
        str(kube_router),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={REAL_NODE}",  # its pods: those whose hostIP is this node's
        "--run-firewall=true",
        # The bridge plugin wires pods and kube-proxy serves Services: only policy is its job.
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--health-port={health_port}",
        "--metrics-port=0",
    ]


def component(run_dir: Path, kubeconfig: Path, health_port: int) -> Component:
    kube_router = binary()
    if not kube_router.exists():
        raise ClusterError(f"{kube_router} is missing: run `make control-plane`")
    return Component(
        NAME,
        argv(kube_router, kubeconfig, health_port),
        f"http://127.0.0.1:{health_port}/healthz",
        run_dir / f"{NAME}.log",
    )


def chains_installed() -> bool:
    """The firewall controller's first act: its chains hooked into the filter table."""
    result = subprocess.run(
        ["iptables", "-S", "KUBE-ROUTER-FORWARD"], capture_output=True, check=False
    )
    return result.returncode == 0


def wait_ready(item: Component) -> None:
    """/healthz answers once its informers have synced; the chains show its rules are in."""
    wait_for(
        f"{NAME} /healthz",
        functools.partial(probe, item.health_url, None),
        COMPONENT_TIMEOUT_S,
        item,
    )
    wait_for(f"{NAME}'s iptables chains", chains_installed, COMPONENT_TIMEOUT_S, item)


def rule_removals(filter_table: str) -> tuple[list[list[str]], list[str]]:
    """From `iptables-save -t filter`: the `-D` arguments of every rule in a chain that is not
    kube-router's and jumps to one that is, then kube-router's own chains (to flush, then
    delete)."""
    ours: list[str] = []
    jumps: list[list[str]] = []
    for line in filter_table.splitlines():
        if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES):
            ours.append(line[1:].split()[0])
        elif line.startswith("-A "):
            words = shlex.split(line)  # a quoted comment is one argument
            chain, target = words[1], words[words.index("-j") + 1] if "-j" in words else ""
            if not chain.startswith(CHAIN_PREFIXES) and target.startswith(CHAIN_PREFIXES):
                jumps.append(["-D", *words[1:]])
    return jumps, ours


def remove_rules() -> None:
    if shutil.which("iptables-save") is None:
        return
    saved = subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=False
    ).stdout
    jumps, chains = rule_removals(saved)
    for words in jumps:
        subprocess.run(["iptables", *words], capture_output=True, check=False)
    for flag in ("-F", "-X"):
        for chain in chains:
            subprocess.run(["iptables", flag, chain], capture_output=True, check=False)
    if shutil.which("ipset") is not None:
        names = subprocess.run(
            ["ipset", "list", "-n"], capture_output=True, text=True, check=False
        ).stdout.split()
        for name in names:
            if name.startswith(IPSET_PREFIXES):
                subprocess.run(["ipset", "destroy", name], capture_output=True, check=False)
    if jumps or chains:
        log(f"removed {NAME}'s {len(chains)} chains")
