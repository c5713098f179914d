"""The fake GPU nodes kwok keeps Ready, their storage class and kwok's stages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .api import Api
from .config import KWOK_STAGES


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
