"""What runs the pods: a Deployment for a replica on one node, a LeaderWorkerSet for a replica
that needs a group of nodes, and what changes around it (Service, autoscaler, network policy)."""

from __future__ import annotations

from typing import Any

import yaml
from specs import cr

from deepseek_operator.api import parse_spec
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import (
    Target,
    children,
    config_map,
    deployment,
    horizontal_pod_autoscaler,
    leader_worker_set,
    network_policy,
    scaled_object,
    service,
    serving_selector,
)

# DeepSeek-R1 in bf16 on H100s: 8 GPUs on each of 4 nodes per replica.
R1_BF16 = {
    "model.name": "deepseek-ai/DeepSeek-R1",
    "quantization": "bf16",
    "resources.gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
}


def target(**changes: Any) -> Target:
    spec = parse_spec(cr(**changes)["spec"])
    return Target("r1", "ai", spec, plan_for_spec(spec))


def group(**changes: Any) -> Target:
    return target(**{**R1_BF16, **changes})


def templates(t: Target) -> tuple[dict[str, Any], dict[str, Any]]:
    lws = leader_worker_set(t)["spec"]["leaderWorkerTemplate"]
    return lws["leaderTemplate"], lws["workerTemplate"]


def test_a_replica_of_several_nodes_is_a_leader_worker_set_not_a_deployment() -> None:
    kinds = [c["kind"] for c in children(group())]
    assert "LeaderWorkerSet" in kinds and "Deployment" not in kinds
    kinds = [c["kind"] for c in children(target())]
    assert "Deployment" in kinds and "LeaderWorkerSet" not in kinds


def test_the_group_is_one_pod_per_node_recreated_together() -> None:
    lws = leader_worker_set(group())
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["metadata"]["name"] == "r1"
    spec = lws["spec"]
    assert spec["leaderWorkerTemplate"]["size"] == 4
    assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert spec["startupPolicy"] == "LeaderCreated"  # the leader is ready only once all join
    # The shared headless Service would be named r1, the API's Service.
    assert spec["networkConfig"] == {"subdomainPolicy": "UniquePerReplica"}
    # Rolled like a Deployment: a whole surge group first, by default.
    assert spec["rolloutStrategy"]["rollingUpdateConfiguration"] == {
        "maxSurge": 1,
        "maxUnavailable": 0,
    }


def test_a_rollout_starts_the_new_pod_before_stopping_the_old_one_by_default() -> None:
    """One replica: surge first, or every spec change would leave the Service with no pod."""
    strategy = deployment(target())["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    in_place = target(rollout={"maxSurge": 0, "maxUnavailable": 1})
    assert deployment(in_place)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 0,
        "maxUnavailable": 1,
    }
    lws = leader_worker_set(group(rollout={"maxSurge": 0, "maxUnavailable": 1}))
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["maxSurge"] == 0


def test_the_serving_pod_keeps_serving_until_endpoints_drop_it() -> None:
    pod = deployment(target())["spec"]["template"]["spec"]
    server = pod["containers"][0]
    seconds = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < seconds < pod["terminationGracePeriodSeconds"]
    worker = templates(group())[1]["spec"]["containers"][0]
    assert "lifecycle" not in worker  # no endpoints to leave: a worker stops with its group


def test_every_pod_of_the_group_takes_all_gpus_of_its_node() -> None:
    for template in templates(group()):
        pod = template["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        assert (
            limits["nvidia.com/gpu"]
            == pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"]
            == "8"
        )
        assert pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


def test_the_leader_serves_and_the_workers_only_run_ranks() -> None:
    leader, worker = templates(group(**{"security": {"apiKeys": {"secretName": "keys"}}}))
    serving = leader["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in serving["ports"]}
    assert ports["http"] == 8080 and ports["rendezvous"] == 29500
    assert serving["readinessProbe"]["httpGet"]["path"] == "/ready"
    ranks = worker["spec"]["containers"][0]
    assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(ranks)
    assert serving["args"] == ranks["args"]  # the runtime tells its role from LWS_WORKER_INDEX
    # The keys stay with the pod that serves.
    assert "api-keys" in {v["name"] for v in leader["spec"]["volumes"]}
    assert "api-keys" not in {v["name"] for v in worker["spec"]["volumes"]}
    assert "prometheus.io/scrape" not in worker["metadata"]["annotations"]


def test_a_new_configuration_rolls_the_whole_group() -> None:
    hashes = {t["metadata"]["annotations"]["deepseek.ai/config-hash"] for t in templates(group())}
    assert len(hashes) == 1
    changed = templates(group(runtime={"maxQueueLength": 10}))
    assert {t["metadata"]["annotations"]["deepseek.ai/config-hash"] for t in changed} != hashes


def test_the_runtime_is_told_the_group_s_degree_and_rendezvous() -> None:
    settings = yaml.safe_load(config_map(group())["data"]["runtime.yaml"])
    assert settings["tensor_parallel_size"] == 32 and settings["rendezvous_port"] == 29500
    one_node = yaml.safe_load(config_map(target())["data"]["runtime.yaml"])
    assert "tensor_parallel_size" not in one_node and "rendezvous_port" not in one_node


def test_groups_are_left_to_the_autoscaler_when_there_is_one() -> None:
    assert "replicas" not in leader_worker_set(group())["spec"]
    assert leader_worker_set(group(autoscaling=None, replicas=3))["spec"]["replicas"] == 3


def test_the_service_and_the_status_selector_pick_the_leaders() -> None:
    selector = service(group())["spec"]["selector"]
    assert selector["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert selector["app.kubernetes.io/instance"] == "r1"
    assert serving_selector(group()).endswith(",leaderworkerset.sigs.k8s.io/worker-index=0")
    assert "worker-index" not in str(service(target())["spec"]["selector"])


def test_the_autoscalers_scale_groups() -> None:
    ref = horizontal_pod_autoscaler(group())["spec"]["scaleTargetRef"]
    assert ref == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": "r1",
    }
    keda = scaled_object(group(**{"autoscaling.mode": "keda"}))["spec"]["scaleTargetRef"]
    assert keda["kind"] == "LeaderWorkerSet"
    assert horizontal_pod_autoscaler(target())["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_the_group_s_pods_may_reach_each_other_on_any_port() -> None:
    pods = {"podSelector": {"matchLabels": deployment(target())["spec"]["selector"]["matchLabels"]}}
    policy = network_policy(group())["spec"]
    assert {"from": [pods]} in policy["ingress"] and {"to": [pods]} in policy["egress"]
    one_node = network_policy(target())["spec"]
    assert {"from": [pods]} not in one_node["ingress"] and {"to": [pods]} not in one_node["egress"]
