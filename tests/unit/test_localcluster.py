"""hack/localcluster without starting a cluster: certificates Python's strict X.509 checks accept,
the fake GPU nodes, and the rule that `down` signals only the processes it recorded."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from devkit.ports import free_ports
from localcluster import config, images, node_config
from localcluster.config import GPU_NODES
from localcluster.lifecycle import down
from localcluster.nodes import node_manifest
from localcluster.pki import write_certificates
from localcluster.processes import process_start_time, stop_pids
from localcluster.state import healthy

REPO = Path(__file__).resolve().parents[2]


def test_serving_certificate_passes_strict_verification(tmp_path: Path) -> None:
    write_certificates(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "serving.crt", tmp_path / "serving.key")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13

    hosts = ("127.0.0.1", "localhost")  # the IP and the DNS name the kubeconfig may use
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in hosts:
                conn, _ = listener.accept()
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        for host in hosts:
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                client_context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.send(b"x")
        thread.join(timeout=5)


def test_keys_are_private(tmp_path: Path) -> None:
    write_certificates(tmp_path)
    for key in ("ca.key", "serving.key", "sa.key"):
        assert (tmp_path / key).stat().st_mode & 0o077 == 0


def test_gpu_nodes_are_kwok_managed_and_untainted() -> None:
    names = [name for name, _product, _memory in GPU_NODES]
    assert names == ["gpu-node-1", "gpu-node-2"]
    products = [product for _name, product, _memory in GPU_NODES]
    assert products == ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]
    node = node_manifest("n", "NVIDIA-H100-80GB-HBM3", 81559)
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.memory"] == "81559"
    for field in ("capacity", "allocatable"):
        assert node["status"][field] == {
            "cpu": "64",
            "memory": "512Gi",
            "pods": "110",
            "ephemeral-storage": "1Ti",
            "nvidia.com/gpu": "8",
        }
    assert "taints" not in node.get("spec", {})


def test_free_ports_are_distinct() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6


def test_stop_signals_only_recorded_processes(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        real = process_start_time(sleeper.pid)
        assert real
        # Same pid, different start time: a reused pid, which must be left alone.
        stop_pids([("imposter", sleeper.pid, "1")], grace=0.5)
        assert sleeper.poll() is None
        stop_pids([("sleep", sleeper.pid, real)], grace=5)
        assert sleeper.wait(timeout=5) == -15  # SIGTERM was enough
    finally:
        sleeper.kill()
        sleeper.wait()


def test_down_is_idempotent(tmp_path: Path) -> None:
    run_dir = tmp_path / "cluster"
    down(run_dir)  # nothing there: not an error
    run_dir.mkdir()
    (run_dir / "state.json").write_text(
        '{"processes": [{"name": "x", "pid": 1, "start_time": "0"}]}'
    )
    down(run_dir)
    assert not run_dir.exists()
    assert not healthy(run_dir)


@pytest.mark.parametrize("command", ["status", "env"])
def test_cli_without_a_cluster(command: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localcluster", command, "--dir", str(tmp_path / "x")],
        cwd=REPO / "hack",
        capture_output=True,
        text=True,
        check=False,
    )
    if command == "status":
        assert result.returncode == 1
    else:
        assert result.stdout.strip() == f"export KUBECONFIG={tmp_path / 'x' / 'kubeconfig'}"


def test_real_node_keeps_traffic_on_the_machine(tmp_path: Path) -> None:
    """No masquerade off the bridge, NodePorts on the bridge address only, no resolver."""
    cni = node_config.cni_conflist(tmp_path)
    bridge = cni["plugins"][0]
    assert bridge["bridge"] == config.BRIDGE and bridge["ipMasq"] is False
    proxy = node_config.kube_proxy_config(tmp_path / "kubeconfig", 1, 2)
    assert proxy["nodePortAddresses"] == [f"{config.NODE_IP}/32"]
    assert proxy["healthzBindAddress"].startswith("127.0.0.1:")
    kubelet = node_config.kubelet_config(tmp_path, tmp_path / "sock", tmp_path / "ca.crt", 1, 2)
    assert kubelet["resolvConf"] == ""
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["registerWithTaints"] == [node_config.NODE_TAINT]


def test_containerd_config_has_what_this_machine_needs(tmp_path: Path) -> None:
    text = node_config.containerd_toml(
        tmp_path / "root", tmp_path / "state", tmp_path / "c.sock", "localhost/pause:1", tmp_path
    )
    assert "restrict_oom_score_adj = true" in text  # else every sandbox fails here
    assert 'sandbox_image = "localhost/pause:1"' in text  # nothing is pulled


def test_image_tags_follow_the_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "REPO", tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("1")
    (tmp_path / "a" / "__pycache__").mkdir()
    first = images.content_tag([tmp_path / "a"], "base:1")
    (tmp_path / "a" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert images.content_tag([tmp_path / "a"], "base:1") == first  # caches do not count
    assert images.content_tag([tmp_path / "a"], "base:2") != first  # a new base does
    (tmp_path / "a" / "x.py").write_text("2")
    assert images.content_tag([tmp_path / "a"], "base:1") != first
