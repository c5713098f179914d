"""KEDA for `autoscaling.mode: keda` (`up --keda`, or `keda-up` on a running cluster): its CRDs,
and its operator and metrics API server as host processes, like prometheus-adapter (metrics.py).

KEDA's operator reads the ScaledObjects the DeepSeek operator writes, queries Prometheus itself
(the trigger's serverAddress) and makes an HPA on an external metric. Its metrics server serves
external.metrics.k8s.io to the HPA controller through the aggregation layer and asks the
operator for each value over gRPC. In a cluster both run in pods and issue their own
certificates (cert rotation); here one certificate signed by the cluster CA serves all three TLS
links: the aggregator to the metrics server (as keda-metrics-apiserver.keda.svc, on the bridge
address) and the mutual TLS between the two processes on loopback. The admission webhooks are
not run: they only validate ScaledObjects, which the operator's builder already makes valid.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

from .api import Api, probe
from .config import COMPONENT_TIMEOUT_S, NODE_IP, ClusterError, cache_bin, log, run_build
from .lws import apply_yaml, established
from .metrics import apiservice, available, register
from .metrics_pki import write_adapter_certificate
from .processes import Component, wait_for

NAMESPACE = "keda"
METRICS_SERVICE = "keda-metrics-apiserver"
GROUP = "external.metrics.k8s.io"
OPERATOR = "keda-operator"
ADAPTER = "keda-adapter"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def build() -> None:
    """hack/build-keda.sh: quiet when KEDA is cached (under versions.env's keda_bin)."""
    run_build("build-keda.sh")


def crd_name(path: Path) -> str:
    """config/crd/bases names each file GROUP_PLURAL.yaml; the CRD is named PLURAL.GROUP."""
    group, _, plural = path.stem.partition("_")
    if not group or not plural:
        raise ClusterError(f"{path.name}: expected GROUP_PLURAL.yaml, as KEDA's config/crd names")
    return f"{plural}.{group}"


def crd_files(bin_dir: Path) -> list[Path]:
    found = sorted((bin_dir / "crds").glob("*.yaml"))
    if not any(crd_name(f) == "scaledobjects.keda.sh" for f in found):
        raise ClusterError(f"no ScaledObject CRD in {bin_dir / 'crds'}: run hack/build-keda.sh")
    return found


def components(
    run_dir: Path, bin_dir: Path, kubeconfig: Path
) -> tuple[Component, Component, dict[str, int]]:
    certs = run_dir / "keda" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    grpc_port, health_port, adapter_port, adapter_metrics_port = free_ports(4)
    # tls.crt/tls.key/ca.crt in one folder: the names both binaries read for their gRPC link.
    write_adapter_certificate(
        run_dir / "pki", certs, f"{METRICS_SERVICE}.{NAMESPACE}.svc", NODE_IP, "127.0.0.1",
        client=True, stem="tls",
    )  # fmt: skip
    shutil.copyfile(run_dir / "pki" / "ca.crt", certs / "ca.crt")
    env = {
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": "",  # every namespace
        # Where a pod would read its own namespace from its service account.
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        "POD_NAMESPACE": NAMESPACE,
    }
    operator = Component(
        OPERATOR,
        [
            str(bin_dir / OPERATOR),
            "--leader-elect=false",
            "--metrics-bind-address=0",  # off: nothing here scrapes KEDA itself
            f"--health-probe-bind-address=127.0.0.1:{health_port}",
            f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
            f"--cert-dir={certs}",
            "--enable-cert-rotation=false",  # the certificate above, not its own
        ],
        f"http://127.0.0.1:{health_port}/healthz",
        run_dir / f"{OPERATOR}.log",
        env,
    )
    adapter = Component(
        ADAPTER,
        [
            str(bin_dir / ADAPTER),
            f"--port={adapter_metrics_port}",  # its own /metrics, default 8080
            f"--metrics-service-address=127.0.0.1:{grpc_port}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={NODE_IP}",
            f"--secure-port={adapter_port}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
        ],
        f"https://{NODE_IP}:{adapter_port}/healthz",
        run_dir / f"{ADAPTER}.log",
        env,
    )
    return operator, adapter, {OPERATOR: grpc_port, ADAPTER: adapter_port}


def install_crds(api: Api, bin_dir: Path) -> None:
    for path in crd_files(bin_dir):
        # One document each, after a leading `---` that the apply body does not want.
        text = path.read_text().removeprefix("---\n")
        apply_yaml(api, f"{CRD_PATH}/{crd_name(path)}", text)
    for path in crd_files(bin_dir):
        name = crd_name(path)
        wait_for(f"the CRD {name} Established", partial(established, api, name), 60, None)


def start(
    run_dir: Path, api: Api, launch: Callable[[Component], None], state: dict[str, Any]
) -> None:
    bin_dir = cache_bin("keda_bin")
    for binary in (OPERATOR, ADAPTER):
        if not (bin_dir / binary).exists():
            raise ClusterError(f"{bin_dir / binary} is missing: run hack/build-keda.sh")
    install_crds(api, bin_dir)
    operator, adapter, ports = components(run_dir, bin_dir, run_dir / "kubeconfig")
    for item in (operator, adapter):
        launch(item)
        healthy = partial(probe, item.health_url, api.ca_file)
        wait_for(f"{item.name} /healthz", healthy, COMPONENT_TIMEOUT_S, item)
    service = apiservice(api.ca_file, GROUP, NAMESPACE, METRICS_SERVICE)
    register(api, service, ports[ADAPTER])
    wait_for(f"APIService v1beta1.{GROUP} Available", lambda: available(api, GROUP),
             2 * COMPONENT_TIMEOUT_S, adapter)  # fmt: skip
    state["keda"] = {"apiservice": service, "crds": [crd_name(p) for p in crd_files(bin_dir)]}
    log(f"keda: operator (gRPC on 127.0.0.1:{ports[OPERATOR]}), {GROUP} served by its metrics "
        f"server on {NODE_IP}:{ports[ADAPTER]}")  # fmt: skip


def remove(api: Api, part: dict[str, Any], timeout: float = 120.0) -> None:
    """Undo start's objects, while KEDA's operator still runs: it holds a finalizer on every
    ScaledObject, which the CRDs' deletion waits for."""
    for name in part["crds"]:
        api.delete(f"{CRD_PATH}/{name}")
    api.delete(
        f"/apis/apiregistration.k8s.io/v1/apiservices/{part['apiservice']['metadata']['name']}"
    )
    api.delete(f"/api/v1/namespaces/{NAMESPACE}")
    deadline = time.monotonic() + timeout
    left = list(part["crds"])
    while left and time.monotonic() < deadline:
        left = [name for name in left if api.exists(f"{CRD_PATH}/{name}")]
        time.sleep(1)
    if left:
        raise ClusterError(f"KEDA's CRDs {', '.join(left)} were not deleted within {timeout:.0f}s")
