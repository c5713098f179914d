"""The operator writes the runtime's configuration; the runtime must accept every word of it.

Two packages, one contract: each example CR's ConfigMap and container args are fed to the
runtime's own settings loader and argument parser, so a renamed flag breaks here, not in a pod.

Beyond one GPU the contract is stated here, once (issue 11; the runtime reads it in
deepseek_runtime.parallel.topology):

- ``tensor_parallel_size`` (config file): ranks per replica, one per GPU across all its pods;
  absent for one GPU.
- ``rendezvous_port`` (config file, a replica of several nodes only): where rank 0, on the
  leader, listens for the other ranks of its group.
- Every pod of a group runs the same ``serve --config FILE``; it learns its place from the
  environment the LWS controller injects, never set by the operator: ``LWS_LEADER_ADDRESS``,
  ``LWS_GROUP_SIZE`` and ``LWS_WORKER_INDEX`` (0: the leader, which serves; others only run
  ranks, ``tensor_parallel_size / LWS_GROUP_SIZE`` of them, the first being
  ``LWS_WORKER_INDEX x`` that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deepseek_operator.api import parse_spec
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import (
    Target,
    config_map,
    network_policy,
    service,
    service_monitor,
    workload,
)
from deepseek_runtime.parallel.topology import topology
from deepseek_runtime.server.cli import build_parser
from deepseek_runtime.server.drain import SHUTDOWN_MARGIN_S
from deepseek_runtime.settings import ServerSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CONFIG = "/etc/deepseek/config/runtime.yaml"
PARALLEL_KEYS = ("tensor_parallel_size", "rendezvous_port")
LWS_ENV = ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX")


def target_of(doc: dict[str, Any]) -> Target:
    spec = parse_spec(doc["spec"])
    return Target(doc["metadata"]["name"], "ai", spec, plan_for_spec(spec))


def example(path: Path) -> Target:
    return target_of(yaml.safe_load(path.read_text()))


def settings_of(t: Target) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(config_map(t)["data"]["runtime.yaml"])
    return parsed


def pod_templates(t: Target) -> list[dict[str, Any]]:
    """Every pod template, the serving one first: the Deployment's, or the LeaderWorkerSet's
    leader and worker."""
    body = workload(t)
    if body["kind"] == "Deployment":
        return [body["spec"]["template"]]
    group = body["spec"]["leaderWorkerTemplate"]
    return [group["leaderTemplate"], group["workerTemplate"]]


def pod_specs(t: Target) -> list[dict[str, Any]]:
    return [template["spec"] for template in pod_templates(t)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_runtime_accepts_the_operators_config(path: Path, tmp_path: Path) -> None:
    t = example(path)
    config_file = tmp_path / "runtime.yaml"
    config_file.write_text(config_map(t)["data"]["runtime.yaml"])
    settings = load_settings({}, {}, config_file)
    assert settings.served_model_name == t.spec.model.name
    assert settings.max_num_seqs == t.spec.runtime.max_concurrent_sequences
    assert settings.host == "0.0.0.0"
    assert settings.unsafe_binding() is None  # keys, or an explicit allow behind the policy
    if t.spec.security.tls:
        assert settings.tls_cert is not None and settings.tls_key is not None
    if t.plan is not None:
        assert settings.max_model_len == t.plan.max_model_len


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_port_the_operator_points_at_is_one_the_runtime_listens_on(
    path: Path, tmp_path: Path
) -> None:
    """The container's named ports are where the runtime, given the operator's config, listens;
    the scrape (ServiceMonitor -> Service -> container port, and the prometheus.io annotations)
    lands on the runtime's metrics port; and the NetworkPolicy opens to the monitoring namespace
    that port and Triton's metrics port, never the API's."""
    t = example(path)
    config_file = tmp_path / "runtime.yaml"
    config_file.write_text(config_map(t)["data"]["runtime.yaml"])
    s = load_settings({}, {}, config_file)
    listening = {
        "http": s.port,
        "metrics": s.metrics_port,
        "triton-http": s.triton_http_port,
        "triton-grpc": s.triton_grpc_port,
        "triton-metrics": s.triton_metrics_port,
    }
    serving = pod_templates(t)[0]
    declared = {p["name"]: p["containerPort"] for p in serving["spec"]["containers"][0]["ports"]}
    declared.pop("rendezvous", None)  # the ranks' store, not an HTTP listener
    assert declared == listening
    (scrape,) = service_monitor(t)["spec"]["endpoints"]
    (port,) = [p for p in service(t)["spec"]["ports"] if p["name"] == scrape["port"]]
    assert declared[port["targetPort"]] == s.metrics_port != s.port
    assert serving["metadata"]["annotations"]["prometheus.io/port"] == str(s.metrics_port)
    prometheus = {"matchLabels": {"kubernetes.io/metadata.name": t.spec.monitoring.namespace}}
    (monitoring,) = [
        rule
        for rule in network_policy(t)["spec"]["ingress"]
        if {"namespaceSelector": prometheus} in rule.get("from", [])
    ]
    assert {p["port"] for p in monitoring["ports"]} == {s.metrics_port, s.triton_metrics_port}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_runtime_parses_the_containers_arguments(path: Path) -> None:
    for pod in pod_specs(example(path)):
        args = build_parser().parse_args(pod["containers"][0]["args"])
        assert args.command == "serve"
        for init in pod.get("initContainers", []):
            assert init["command"][0] == "deepseek-runtime"
            verify = build_parser().parse_args(init["command"][1:])
            assert verify.command == "verify-manifest"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_runtime_drains_within_the_grace_period_the_operator_gives(path: Path) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after its deletion: the preStop wait
    (the serving pod keeps serving while endpoints drop it), then the runtime's whole shutdown
    after SIGTERM (its default drain budget plus what a shutdown adds), must end before that."""
    for pod in pod_specs(example(path)):
        grace = pod["terminationGracePeriodSeconds"]
        drain = ServerSettings().drain_timeout_s
        lifecycle = pod["containers"][0].get("lifecycle") or {}
        wait = ((lifecycle.get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
        assert wait + drain + SHUTDOWN_MARGIN_S <= grace, (wait, drain, SHUTDOWN_MARGIN_S, grace)


@dataclass(frozen=True)
class Plan:
    """A CR and exactly the parallelism settings the operator writes for it."""

    id: str
    model: str
    quantization: str
    product: str
    parallel: dict[str, int]
    nodes: int = 1

    def target(self) -> Target:
        gpu = {"count": "auto", "product": self.product}
        source = {"pvc": {"claimName": "models", "path": "m"}}
        doc = {
            "metadata": {"name": self.id},
            "spec": {
                "model": {"name": self.model, "source": source},
                "quantization": self.quantization,
                "resources": {"gpu": gpu},
            },
        }
        return target_of(doc)


SINGLE_GPU = Plan("one-gpu", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "int8", "NVIDIA-H100", {})
MULTI_GPU = Plan(
    "four-gpus",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
    "bf16",
    "NVIDIA-H100-80GB-HBM3",
    {"tensor_parallel_size": 4},
)
MULTI_NODE = Plan(
    "two-nodes",
    "deepseek-ai/DeepSeek-R1",
    "none",
    "NVIDIA-H100-80GB-HBM3",
    {"tensor_parallel_size": 16, "rendezvous_port": 29500},
    nodes=2,
)
PLANS = [SINGLE_GPU, MULTI_GPU, MULTI_NODE]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.id)
def test_the_operator_writes_exactly_these_parallel_settings(plan: Plan) -> None:
    t = plan.target()
    settings = settings_of(t)
    assert {k: settings[k] for k in PARALLEL_KEYS if k in settings} == plan.parallel
    assert t.nodes == plan.nodes
    pods = pod_specs(t)
    assert len(pods) == (2 if plan.nodes > 1 else 1)  # a group: its leader and its workers
    for pod in pods:
        container = pod["containers"][0]
        assert container["args"] == ["serve", "--config", CONFIG]
        assert not {e["name"] for e in container["env"]} & set(LWS_ENV)  # the LWS controller's
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus * plan.nodes == plan.parallel.get("tensor_parallel_size", 1)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.id)
def test_the_runtime_accepts_them(plan: Plan, tmp_path: Path) -> None:
    config_file = tmp_path / "runtime.yaml"
    config_file.write_text(config_map(plan.target())["data"]["runtime.yaml"])
    # A group's pod, as the LWS controller starts a worker; the variables are the runtime's to
    # read, not settings (none of them is DEEPSEEK_RUNTIME_*).
    env = {"LWS_LEADER_ADDRESS": "two-nodes-0.two-nodes-0.ai", "LWS_GROUP_SIZE": "2"}
    settings = load_settings({}, {**env, "LWS_WORKER_INDEX": "1"}, config_file)
    for key, value in plan.parallel.items():
        assert getattr(settings, key) == value
    if plan.nodes > 1:  # each pod of the group runs the ranks of the GPUs the operator gave it
        gpus = int(
            pod_specs(plan.target())[1]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
        )
        worker = topology(settings.tensor_parallel_size, settings.rendezvous_port,
                          {**env, "LWS_WORKER_INDEX": "1"})  # fmt: skip
        assert worker.ranks == tuple(range(gpus, 2 * gpus))
        assert worker.store_host == env["LWS_LEADER_ADDRESS"] and not worker.serves
