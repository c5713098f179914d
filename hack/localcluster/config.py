"""Paths, pinned versions (hack/versions.env is the single source) and address ranges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
DEFAULT_DIR = REPO / ".run" / "cluster"

# 10.0.0.0/24 (the doc's value) holds 254 addresses: too few once the benchmark makes 300
# Services and 300 pods, so services and pods each get a /16 of their own.
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.0.0.0/16"  # kwok's fake pods: addresses nothing answers, routed nowhere
# The real node: a bridge of its own, its gateway address the node's (and, with a real node,
# the API server's) address. Nothing on it is routed off the machine (realnode.py).
BRIDGE = "cni0"
NODE_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
REAL_NODE = "real-node"
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
    run_build("build-control-plane.sh")


def run_build(script: str) -> None:
    """hack/SCRIPT, one of the idempotent Go builds (quiet when cached)."""
    result = subprocess.run(["bash", str(HACK / script)], check=False)
    if result.returncode != 0:
        raise ClusterError(f"hack/{script} failed with exit code {result.returncode}")


def cache_bin(function: str) -> Path:
    """The cache folder that hack/versions.env's shell function FUNCTION (e.g. keda_bin) names."""
    script = f'source "{HACK}/versions.env" && {function}'
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def cluster_dir(path: str | None = None) -> Path:
    return Path(path or os.environ.get("DEEPSEEK_CLUSTER_DIR") or DEFAULT_DIR).resolve()
