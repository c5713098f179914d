"""What the real node's parts are told: pure builders of containerd's, the CNI's, the kubelet's
and kube-proxy's configuration (realnode.py writes them and starts the processes).

Why each setting is there is said beside it; most come from what was tried on this machine
(../shared/docs/real-node.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import BRIDGE, NODE_CIDR, NODE_IP, REAL_NODE

# As GPU feature discovery labels a node; "Local-CPU" says no real GPU is behind it, and the
# runtime falls back to the CPU. Tainted so that only pods that ask for the real node land on
# it: the kwok nodes keep the scale tests, the real node the few pods that must really run.
NODE_GPUS = 4  # advertised as an extended resource; enough for a few runtime pods at once
NODE_LABELS = {
    "nvidia.com/gpu.present": "true",
    # A product no catalogue knows and no memory label: the operator's sizing, which reads what
    # the nodes advertise, leaves this node out (it has no GPU memory to size for).
    "nvidia.com/gpu.product": "Local-CPU",
    "deepseek.ai/real-node": "true",
}
NODE_TAINT = {"key": "deepseek.ai/real-node", "value": "true", "effect": "NoSchedule"}


def containerd_toml(root: Path, state: Path, socket: Path, pause: str, cni_dir: Path) -> str:
    return f"""version = 2
# The image store outlives the cluster (multi-GB images are loaded once); everything that
# belongs to one run (sockets, task state, network namespaces) lives in the run dir.
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  # A locally built pause image: nothing is pulled.
  sandbox_image = "{pause}"
  # This machine refuses a negative oom_score_adj even for root; without this every sandbox
  # fails with runc's "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Under the run dir, so that `down` finds and unmounts them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_dir}"
    max_conf_num = 1
"""


def cni_conflist(ipam_dir: Path) -> dict[str, Any]:
    """The bridge plugin on the node's own bridge, addresses from the node's /24. No IP
    masquerade: nothing a pod sends is meant to leave the machine."""
    return {
        "cniVersion": "1.0.0",
        "name": "deepseek-local",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    run_dir: Path, socket: Path, ca: Path, port: int, healthz_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "containerRuntimeEndpoint": f"unix://{socket}",
        # This machine mounts cgroup v1 controllers; cgroupfs, no QoS hierarchy, no node
        # allocatable enforcement: what worked here (real-node.md).
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        # Only the API server's client certificate may call the kubelet (logs, exec).
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "registerWithTaints": [NODE_TAINT],
        # No cluster DNS and no resolv.conf: pods reach Services by cluster IP and have no
        # resolver to send a query off the machine.
        "resolvConf": "",
        "podLogsDir": str(run_dir / "pod-logs"),
        "maxPods": 30,
        "serializeImagePulls": False,
        # The images are large and loaded once; a shared, busy disk must not evict pods or
        # collect the images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "5s",
    }


def kubelet_args(run_dir: Path, config: Path, kubeconfig: Path) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
    return [
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={run_dir / 'kubelet'}",
        f"--cert-dir={run_dir / 'kubelet' / 'pki'}",
        f"--hostname-override={REAL_NODE}",
        # A loopback node IP is refused; the bridge's gateway is on this machine only.
        f"--node-ip={NODE_IP}",
        f"--node-labels={labels}",
        "--v=1",
    ]


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": REAL_NODE,
        "mode": "iptables",
        "clusterCIDR": NODE_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Replies to host -> ClusterIP -> pod traffic come back through the host.
        "iptables": {"masqueradeAll": True, "minSyncPeriod": "0s", "syncPeriod": "30s"},
        # NodePorts answer on the bridge address only, never on the machine's own interface.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Zero: leave the machine's conntrack settings as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def gpu_capacity_patch() -> list[dict[str, Any]]:
    """JSON patch of the node's status: `nvidia.com/gpu` as an extended resource, the
    documented way to advertise one without a device plugin."""
    return [
        {"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(NODE_GPUS)},
    ]
