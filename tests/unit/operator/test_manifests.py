from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from specs import cr

from deepseek_operator.api import parse_spec
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import (
    CONFIG_HASH_ANNOTATION,
    QUEUE_METRIC,
    Target,
    children,
    config_map,
    deployment,
    horizontal_pod_autoscaler,
    network_policy,
    pod_disruption_budget,
    scaled_object,
    service,
    service_account,
    service_monitor,
)


def target(**changes: Any) -> Target:
    body = cr(**changes)
    spec = parse_spec(body["spec"])
    return Target("r1", "ai", spec, plan_for_spec(spec))


def container(t: Target) -> dict[str, Any]:
    return deployment(t)["spec"]["template"]["spec"]["containers"][0]


def test_every_child_has_name_namespace_and_standard_labels() -> None:
    for child in children(target(**{"monitoring.serviceMonitor": True})):
        meta = child["metadata"]
        assert meta["name"].startswith("r1") and meta["namespace"] == "ai"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "deepseek-operator"
        assert meta["labels"]["app.kubernetes.io/instance"] == "r1"


def test_gpu_requests_equal_limits_and_follow_the_plan() -> None:
    t = target(
        **{
            "model.name": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
            "quantization": "bf16",
            "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
        }
    )
    res = container(t)["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "4"
    pod = deployment(t)["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


ZONES = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]},
            ]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 1,
                "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]},
            }
        ],
    },
    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
}
MEMORY_40 = {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["40959"]}


def test_memory_gib_joins_each_of_the_users_required_node_terms() -> None:
    user = copy.deepcopy(ZONES)
    t = target(**{"resources.gpu": {"memoryGiB": 40}, "scheduling": {"affinity": user}})
    affinity = deployment(t)["spec"]["template"]["spec"]["affinity"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    # (zone a AND memory) OR (node n9 AND memory): the user's requirement, and ours on top.
    assert terms == [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}, MEMORY_40]},
        {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}],
            "matchExpressions": [MEMORY_40],
        },
    ]
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    assert affinity["nodeAffinity"][preferred] == ZONES["nodeAffinity"][preferred]
    assert affinity["podAntiAffinity"] == ZONES["podAntiAffinity"]


def test_building_the_pods_leaves_the_spec_as_it_was() -> None:
    t = target(
        **{"resources.gpu": {"memoryGiB": 40}, "scheduling": {"affinity": copy.deepcopy(ZONES)}}
    )
    first = deployment(t)["spec"]["template"]["spec"]["affinity"]
    assert t.spec.scheduling.affinity == ZONES
    assert deployment(t)["spec"]["template"]["spec"]["affinity"] == first  # nothing stacked


def test_memory_gib_alone_is_the_only_required_term() -> None:
    t = target(**{"resources.gpu": {"memoryGiB": 40}})
    pod = deployment(t)["spec"]["template"]["spec"]
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [{"matchExpressions": [MEMORY_40]}]}
    assert "nvidia.com/gpu.product" not in pod.get("nodeSelector", {})


def test_custom_gpu_resource_name() -> None:
    t = target(**{"resources.gpu.resourceName": "nvidia.com/mig-3g.40gb"})
    assert container(t)["resources"]["limits"]["nvidia.com/mig-3g.40gb"] == "1"


def test_memory_backed_shm_model_volume_read_only() -> None:
    pod = deployment(target())["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["model"]["readOnly"] is True and mounts["dshm"]["mountPath"] == "/dev/shm"


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = deployment(target(**{"model.integrity": {"configMap": {"name": "m"}}}))["spec"][
        "template"
    ]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod["initContainers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert not any("hostPath" in v for v in pod["volumes"])


def test_every_container_that_can_fail_says_why_in_its_status() -> None:
    """A crash at start-up leaves its last log lines as the termination message, which the
    operator's Ready condition quotes (status/pods.py)."""
    pod = deployment(target(**{"model.integrity": {"configMap": {"name": "m"}}}))["spec"][
        "template"
    ]["spec"]
    for c in pod["containers"] + pod["initContainers"]:
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", c["name"]


def test_probes_hit_the_runtime_endpoints_and_switch_to_https_with_tls() -> None:
    plain = container(target())
    assert plain["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert plain["livenessProbe"]["httpGet"]["path"] == "/health"
    assert (
        plain["startupProbe"]["failureThreshold"] * plain["startupProbe"]["periodSeconds"] >= 1800
    )
    tls = container(target(**{"security": {"tls": {"secretName": "cert"}}}))
    assert tls["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def pod_template(t: Target) -> str:
    return json.dumps(deployment(t)["spec"]["template"], sort_keys=True)


def test_config_hash_follows_the_runtime_config() -> None:
    def hash_of(t: Target) -> str:
        return deployment(t)["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]

    assert hash_of(target()) == hash_of(target())
    # Only in the ConfigMap, which a running pod does not reread: the hash must roll the pods.
    assert hash_of(target()) != hash_of(target(**{"runtime": {"maxQueueLength": 10}}))


@pytest.mark.parametrize(
    "changes",
    [
        {"replicas": 3, "autoscaling": None},
        {"autoscaling": None},
        {"autoscaling.maxReplicas": 9},
        {"autoscaling.minReplicas": 2},
        {"autoscaling.targetQueueLength": 2},
        {"autoscaling.scaleDownStabilizationSeconds": 60},
        {"autoscaling.mode": "keda"},
        {"service": {"type": "LoadBalancer", "port": 443}},
        {"monitoring": {"serviceMonitor": True, "interval": "5s", "namespace": "prom"}},
    ],
    ids=lambda c: ",".join(c),
)
def test_scaling_service_and_monitoring_leave_the_pod_template_alone(changes: dict) -> None:
    """A pod template change replaces every pod (a model reload per GPU pod): replicas,
    autoscaling, the Service, monitoring and the PDB are not the pods' business."""
    assert pod_template(target(**changes)) == pod_template(target())


def test_replicas_left_to_the_autoscaler_when_there_is_one() -> None:
    assert "replicas" not in deployment(target())["spec"]
    fixed = deployment(target(autoscaling=None, replicas=3))
    assert fixed["spec"]["replicas"] == 3


def test_hpa_scales_on_the_runtime_queue_gauge() -> None:
    hpa = horizontal_pod_autoscaler(target())
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == QUEUE_METRIC == "deepseek_requests_waiting"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "8"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_keda_mode_makes_a_scaled_object_instead_of_an_hpa() -> None:
    t = target(**{"autoscaling.mode": "keda"})
    kinds = [c["kind"] for c in children(t)]
    assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds
    trigger = scaled_object(t)["spec"]["triggers"][0]
    assert "deepseek_requests_waiting" in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "8"


def test_no_autoscaler_when_absent() -> None:
    kinds = [c["kind"] for c in children(target(autoscaling=None))]
    assert "HorizontalPodAutoscaler" not in kinds and "ScaledObject" not in kinds


def test_service_exposes_openai_metrics_and_triton_ports() -> None:
    ports = {p["name"]: p["port"] for p in service(target())["spec"]["ports"]}
    assert ports == {"http": 8080, "metrics": 8090, "triton-http": 8000, "triton-grpc": 8001}


def test_pdb_and_service_account() -> None:
    assert pod_disruption_budget(target())["spec"]["maxUnavailable"] == 1
    assert service_account(target())["automountServiceAccountToken"] is False


def test_network_policy_defaults_to_same_namespace_and_dns_only_egress() -> None:
    policy = network_policy(target())["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["from"] == [{"podSelector": {}}]
    egress = policy["egress"]
    assert len(egress) == 1 and {p["port"] for p in egress[0]["ports"]} == {53}


def test_network_policy_admits_only_listed_peers() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"team": "apps"}}}]
    policy = network_policy(target(**{"security": {"allowFrom": peers}}))["spec"]
    assert policy["ingress"][0]["from"] == peers
    assert {"podSelector": {}} not in policy["ingress"][0]["from"]


def test_config_map_carries_runtime_settings() -> None:
    settings = yaml.safe_load(config_map(target())["data"]["runtime.yaml"])
    assert settings["model"] == "/models/r1-7b"
    assert settings["served_model_name"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert settings["quantization"] == "int8"
    assert settings["host"] == "0.0.0.0"
    assert settings["allow_unauthenticated"] is True
    keyed = yaml.safe_load(
        config_map(target(**{"security": {"apiKeys": {"secretName": "keys"}}}))["data"][
            "runtime.yaml"
        ]
    )
    assert "allow_unauthenticated" not in keyed
    assert keyed["api_keys"].endswith("api-keys.yaml")


def test_integrity_adds_a_verifying_init_container() -> None:
    pod = deployment(target(**{"model.integrity": {"secret": {"name": "manifest"}}}))["spec"][
        "template"
    ]["spec"]
    init = pod["initContainers"][0]
    assert init["name"] == "verify-weights"
    assert "verify-manifest" in init["command"]
    assert any(v.get("secret", {}).get("secretName") == "manifest" for v in pod["volumes"])
    # The check never raises the pod's CPU request above the runtime's (seen on a 2-core node:
    # a 1-CPU init container left a second pod Pending on "Insufficient cpu").
    runtime = pod["containers"][0]["resources"]["requests"]["cpu"]
    assert init["resources"]["requests"]["cpu"] == runtime


def test_service_monitor_scrapes_the_metrics_port_not_the_api() -> None:
    t = target(**{"monitoring.serviceMonitor": True})
    (endpoint,) = service_monitor(t)["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    # The port it names is the Service's, which targets the container port of that name.
    (port,) = [p for p in service(t)["spec"]["ports"] if p["name"] == endpoint["port"]]
    template = deployment(t)["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert {"name": port["targetPort"], "containerPort": 8090, "protocol": "TCP"} in container[
        "ports"
    ]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8090"


def test_host_path_is_refused_where_pod_security_forbids_it() -> None:
    from deepseek_operator.reconcile import pod_security_problem

    spec = parse_spec(cr(**{"model.source": {"hostPath": {"path": "/data/r1"}}})["spec"])
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    problem = pod_security_problem(spec, restricted)
    assert problem is not None and problem.startswith("spec.model.source.hostPath")
    assert pod_security_problem(spec, {}) is None  # privileged by default
    assert pod_security_problem(parse_spec(cr()["spec"]), restricted) is None


def test_serving_pods_say_which_metric_names_they_export() -> None:
    # The Gateway API Inference Extension's picker maps metric names by this pod label; the
    # runtime exports vLLM's names (tests/runtime/test_openai_server.py scrapes them).
    d = deployment(target())
    label = "inference.networking.k8s.io/engine-type"
    assert d["spec"]["template"]["metadata"]["labels"][label] == "vllm"
    assert label not in d["spec"]["selector"]["matchLabels"]  # selectors are immutable
