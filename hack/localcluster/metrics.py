"""The autoscaling metrics chain (`up --metrics`): Prometheus scrapes the runtime pods on the real
node the way the chart's ServiceMonitor describes, and prometheus-adapter, with exactly the rules
the chart renders, serves custom.metrics.k8s.io to the HPA controller through the API server's
aggregation layer. Both are host processes on loopback and the bridge, stopped by pid like the
rest of the control plane.
"""

from __future__ import annotations

import base64
import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

from .api import Api, probe
from .config import COMPONENT_TIMEOUT_S, NODE_IP, REPO, ClusterError, cache_bin, log, run_build
from .metrics_pki import write_adapter_certificate
from .processes import Component, wait_for

# The chart's ServiceMonitor (templates/servicemonitor.yaml): Services with these labels, their
# port named by metrics.port, path metrics.path; the same values are read from the chart below.
RUNTIME_SERVICE_LABELS = {
    "app.kubernetes.io/name": "deepseek-runtime",
    "app.kubernetes.io/managed-by": "deepseek-operator",
}
# Short on purpose: the autoscaling test watches a queue build up and drain within seconds.
SCRAPE_INTERVAL = "2s"
ADAPTER_NAMESPACE = "monitoring"
ADAPTER_SERVICE = "prometheus-adapter"
API_GROUP = "custom.metrics.k8s.io"
API_VERSION = "v1beta1"


def metrics_bin() -> Path:
    return cache_bin("metrics_stack_bin")


def build() -> Path:
    """The idempotent build (silent when cached); returns where the binaries are."""
    run_build("build-metrics-stack.sh")
    return metrics_bin()


def chart_values(helm: Path) -> dict[str, Any]:
    """The chart's own defaults for metrics.port/path (helm prints them as JSON-able YAML)."""
    out = subprocess.run(
        [str(helm), "show", "values", str(REPO / "charts" / "deepseek-operator"), "--jsonpath",
         "{.metrics}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    values: dict[str, Any] = json.loads(out.stdout)
    return values


def adapter_rules(helm: Path) -> str:
    """The `config.yaml` of the ConfigMap that the chart's metrics.prometheusAdapter renders:
    one copy of the rules, the chart's, for users and for this cluster alike."""
    out = subprocess.run(
        [str(helm), "template", "rules", str(REPO / "charts" / "deepseek-operator"),
         "--set", "metrics.prometheusAdapter.enabled=true",
         "--show-only", "templates/prometheus-adapter-rules.yaml"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return block_scalar(out.stdout, "config.yaml")


def block_scalar(document: str, key: str) -> str:
    """The literal block (`key: |`) under ``key`` in a rendered manifest, dedented; this package
    runs before the venv, so without a YAML parser."""
    lines = document.splitlines()
    for number, line in enumerate(lines):
        if line.strip() == f"{key}: |":
            indent = len(line) - len(line.lstrip())
            body = []
            for following in lines[number + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            return textwrap.dedent("\n".join(body)).strip() + "\n"
    raise ClusterError(f"the chart rendered no `{key}: |` block:\n{document}")


def prometheus_config(server: str, ca: Path, token_file: Path, port: str, path: str) -> str:
    """Kubernetes service discovery of EndpointSlices, kept to what the ServiceMonitor selects, with
    the labels prometheus-operator gives its targets (namespace, pod, service, endpoint and the
    targetLabels app.kubernetes.io/instance): the adapter's rules read namespace and pod, KEDA's
    query reads service."""
    keep = [
        {
            "source_labels": [f"__meta_kubernetes_service_label_{label_name(key)}"],
            "regex": value,
            "action": "keep",
        }
        for key, value in RUNTIME_SERVICE_LABELS.items()
    ]
    port_label = "__meta_kubernetes_endpointslice_port_name"
    keep.append({"source_labels": [port_label], "regex": port, "action": "keep"})
    rename = {
        "__meta_kubernetes_namespace": "namespace",
        "__meta_kubernetes_pod_name": "pod",
        "__meta_kubernetes_service_name": "service",
        "__meta_kubernetes_endpointslice_port_name": "endpoint",
        "__meta_kubernetes_service_label_app_kubernetes_io_instance": "app_kubernetes_io_instance",
    }
    relabel = keep + [
        {"source_labels": [source], "target_label": target} for source, target in rename.items()
    ]
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "deepseek-runtime",
                "metrics_path": path,
                "scrape_timeout": SCRAPE_INTERVAL,
                "kubernetes_sd_configs": [
                    {
                        "role": "endpointslice",
                        "api_server": server,
                        "tls_config": {"ca_file": str(ca)},
                        "authorization": {"credentials_file": str(token_file)},
                    }
                ],
                "relabel_configs": relabel,
            }
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


def label_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


def components(
    run_dir: Path, bin_dir: Path, helm: Path, server: str, ca: Path, token: str
) -> tuple[Component, Component, dict[str, int]]:
    """Prometheus on loopback; the adapter on the bridge address, where the API server's
    aggregator reaches it through a Service (see register)."""
    here = run_dir / "metrics"
    here.mkdir(parents=True, exist_ok=True)
    prometheus_port, adapter_port = free_ports(2)
    token_file = here / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    values = chart_values(helm)
    (here / "prometheus.yml").write_text(
        prometheus_config(server, ca, token_file, str(values["port"]), str(values["path"]))
    )
    (here / "adapter-rules.yaml").write_text(adapter_rules(helm))
    cert, key = write_adapter_certificate(
        run_dir / "pki", here, f"{ADAPTER_SERVICE}.{ADAPTER_NAMESPACE}.svc", NODE_IP
    )
    prometheus = Component(
        "prometheus",
        [
            str(bin_dir / "prometheus"),
            f"--config.file={here / 'prometheus.yml'}",
            f"--storage.tsdb.path={here / 'tsdb'}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        f"http://127.0.0.1:{prometheus_port}/-/ready",
        run_dir / "prometheus.log",
    )
    kubeconfig = str(run_dir / "kubeconfig")
    adapter = Component(
        "prometheus-adapter",
        [
            str(bin_dir / "prometheus-adapter"),
            f"--prometheus-url=http://127.0.0.1:{prometheus_port}",
            f"--config={here / 'adapter-rules.yaml'}",
            # New runtime pods' series are found within seconds, not the default 10 minutes.
            "--metrics-relist-interval=10s",
            "--metrics-max-age=60s",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={NODE_IP}",
            f"--secure-port={adapter_port}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--cert-dir={here}",
            "--v=1",
        ],
        f"https://{NODE_IP}:{adapter_port}/healthz",
        run_dir / "prometheus-adapter.log",
    )
    return prometheus, adapter, {"prometheus": prometheus_port, "prometheus-adapter": adapter_port}


def apiservice(
    ca: Path,
    group: str = API_GROUP,
    namespace: str = ADAPTER_NAMESPACE,
    name: str = ADAPTER_SERVICE,
) -> dict[str, Any]:
    """The APIService that sends ``group`` (v1beta1) to Service ``namespace/name``."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{API_VERSION}.{group}"},
        "spec": {
            "group": group,
            "version": API_VERSION,
            "service": {"namespace": namespace, "name": name, "port": 443},
            "caBundle": base64.b64encode(ca.read_bytes()).decode(),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


def register(api: Api, service: dict[str, Any], adapter_port: int) -> None:
    """A selector-less Service whose one endpoint (an EndpointSlice: what the aggregator and
    kube-proxy read since 1.33) is the adapter on the bridge address, and the APIService
    (``service``, from apiservice()) that sends its group there. The aggregator dials the
    Service's ClusterIP from the host; the real node's kube-proxy rewrites it to the endpoint."""
    namespace = service["spec"]["service"]["namespace"]
    name = service["spec"]["service"]["name"]
    api.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    ns = f"/api/v1/namespaces/{namespace}"
    port = {"name": "https", "port": 443, "targetPort": adapter_port, "protocol": "TCP"}
    api.create(f"{ns}/services", {"metadata": {"name": name}, "spec": {"ports": [port]}})
    api.create(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        {
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": adapter_port, "protocol": "TCP"}],
        },
    )
    api.create("/apis/apiregistration.k8s.io/v1/apiservices", service)


def available(api: Api, group: str = API_GROUP) -> bool:
    """The APIService's own Available condition: the aggregator reached the adapter."""
    service = api.request(
        "GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{API_VERSION}.{group}"
    )
    conditions = service.get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def start(
    run_dir: Path,
    api: Api,
    helm: Path,
    launch: Callable[..., None],
    state: dict[str, Any],
) -> None:
    bin_dir = metrics_bin()
    for binary in ("prometheus", "prometheus-adapter"):
        if not (bin_dir / binary).exists():
            raise ClusterError(f"{bin_dir / binary} is missing: run hack/build-metrics-stack.sh")
    prometheus, adapter, ports = components(
        run_dir, bin_dir, helm, api.server, api.ca_file, api.token
    )
    launch(prometheus)
    wait_for("prometheus /-/ready", lambda: probe(prometheus.health_url, None),
             COMPONENT_TIMEOUT_S, prometheus)  # fmt: skip
    launch(adapter)
    wait_for("prometheus-adapter /healthz", lambda: probe(adapter.health_url, api.ca_file),
             COMPONENT_TIMEOUT_S, adapter)  # fmt: skip
    register(api, apiservice(api.ca_file), ports["prometheus-adapter"])
    # The aggregator's availability check backs off after a miss (kube-proxy may not have the
    # new Service yet): more than one component timeout.
    wait_for(f"APIService {API_VERSION}.{API_GROUP} Available", lambda: available(api),
             2 * COMPONENT_TIMEOUT_S, adapter)  # fmt: skip
    state["metrics"] = {
        "prometheus": f"http://127.0.0.1:{ports['prometheus']}",
        "apiservice": apiservice(api.ca_file),
    }
    adapter_at = f"{NODE_IP}:{ports['prometheus-adapter']}"
    log(f"metrics: prometheus on 127.0.0.1:{ports['prometheus']}, {API_GROUP} served by "
        f"prometheus-adapter on {adapter_at}")  # fmt: skip
