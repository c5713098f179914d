"""The Helm chart, rendered by the real helm binary (hack/build-control-plane.sh builds it).

Lint and template with several value sets, then check the objects: the restricted security
context, Recreate, least-privilege RBAC that still covers what the operator does, Role vs
ClusterRole by value, the optional monitoring parts, and that crds/ matches the chart's copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "deepseek-operator"
CRD_FILE = "deepseek.ai_deepseekdeployments.yaml"
RELEASE, NAMESPACE = "dso", "deepseek-system"

ALL_OPTIONAL: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusAdapter": {"enabled": True, "namespace": "monitoring"},
        "grafanaDashboard": {"enabled": True},
    },
    "keda": {"enabled": True},
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "all-optional": ALL_OPTIONAL,
    "watch-namespace": {"watchNamespace": "ai"},
    "watch-namespace-all-optional": {"watchNamespace": "ai", **ALL_OPTIONAL},
    "custom-image": {"image": {"repository": "registry.example/ds/operator", "tag": "1.2.3"}},
}

WRITE = {"get", "list", "watch", "create", "update", "patch", "delete"}
READ = {"get", "list", "watch"}
# What the operator does inside a namespace it watches (the lead's list in the issue).
NAMESPACED_NEEDS: list[tuple[str, str, set[str]]] = [
    ("deepseek.ai", "deepseekdeployments", WRITE),
    ("deepseek.ai", "deepseekdeployments/status", WRITE),
    ("deepseek.ai", "deepseekdeployments/scale", WRITE),
    ("apps", "deployments", WRITE),
    ("leaderworkerset.x-k8s.io", "leaderworkersets", WRITE),
    ("", "services", WRITE),
    ("", "configmaps", WRITE),
    ("", "serviceaccounts", WRITE),
    ("autoscaling", "horizontalpodautoscalers", WRITE),
    ("policy", "poddisruptionbudgets", WRITE),
    ("networking.k8s.io", "networkpolicies", WRITE),
    ("", "events", {"create", "patch"}),
    ("", "pods", READ),
    ("", "secrets", READ),
    ("", "persistentvolumeclaims", READ),
    ("keda.sh", "scaledobjects", WRITE),
    ("monitoring.coreos.com", "servicemonitors", WRITE),
]
CLUSTER_NEEDS: list[tuple[str, str, set[str]]] = [
    ("apiextensions.k8s.io", "customresourcedefinitions", READ),
    ("", "namespaces", READ),
    ("", "nodes", {"get", "list"}),
]


def helm_binary() -> str:
    """The helm the build made; fails (never skips) when it is missing, as CI must notice."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    out = subprocess.run(
        ["bash", "-c", f'source "{REPO}/hack/versions.env" && control_plane_bin'],
        check=True,
        capture_output=True,
        text=True,
    )
    built = Path(out.stdout.strip()) / "helm"
    if built.exists():
        return str(built)
    found = shutil.which("helm")
    if found:
        return found
    pytest.fail(f"no helm at {built}: run hack/build-control-plane.sh (or make cluster-up)")


def k8s_version() -> str:
    out = subprocess.run(
        ["bash", "-c", f'source "{REPO}/hack/versions.env" && echo "$K8S_VERSION"'],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def helm(*args: str, values: dict[str, Any] | None = None, tmp: Path | None = None) -> str:
    command = [helm_binary(), *args]
    if values:
        assert tmp is not None
        values_file = tmp / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
        command += ["--values", str(values_file)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def render(values: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    out = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        k8s_version(),
        values=values,
        tmp=tmp,
    )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def only(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def allows(rules: list[dict[str, Any]], group: str, resource: str, verbs: set[str]) -> bool:
    granted: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            granted |= set(rule["verbs"])
    return verbs <= granted


def missing(rules: list[dict[str, Any]], needs: list[tuple[str, str, set[str]]]) -> list[str]:
    return [f"{g or 'core'}/{r} {sorted(v)}" for g, r, v in needs if not allows(rules, g, r, v)]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_is_clean(name: str, tmp_path: Path) -> None:
    out = helm("lint", str(CHART), "--strict", values=VALUE_SETS[name], tmp=tmp_path)
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_value_set_renders(name: str, tmp_path: Path) -> None:
    objects = render(VALUE_SETS[name], tmp_path)
    assert only(objects, "Deployment")["metadata"]["namespace"] == NAMESPACE
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_operator_deployment_is_restricted_and_recreated(tmp_path: Path) -> None:
    deployment = only(render({}, tmp_path), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in security
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    assert container["args"][:2] == ["run", "--liveness=http://0.0.0.0:8080/healthz"]
    assert "--namespace" not in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz"
        assert ports[probe["httpGet"]["port"]] == 8080
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    assert container["image"] == "deepseek-operator:0.1.0"  # tag defaults to appVersion
    assert pod["serviceAccountName"] == f"{RELEASE}-deepseek-operator"


def test_image_comes_from_values(tmp_path: Path) -> None:
    deployment = only(render(VALUE_SETS["custom-image"], tmp_path), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/ds/operator:1.2.3"


def test_cluster_wide_by_default(tmp_path: Path) -> None:
    objects = render({}, tmp_path)
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    role = only(objects, "ClusterRole")
    assert missing(role["rules"], NAMESPACED_NEEDS + CLUSTER_NEEDS) == []
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-deepseek-operator", "namespace": NAMESPACE}
    ]
    # Cluster-scoped names carry the namespace: one release name fits in many namespaces.
    assert role["metadata"]["name"] == f"{RELEASE}-deepseek-operator-{NAMESPACE}"


def test_watch_namespace_gives_a_role_and_minimal_cluster_read(tmp_path: Path) -> None:
    objects = render({"watchNamespace": "ai"}, tmp_path)
    role = only(objects, "Role")
    assert role["metadata"]["namespace"] == "ai"
    assert missing(role["rules"], NAMESPACED_NEEDS) == []
    binding = only(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "ai"
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"][0]["namespace"] == NAMESPACE

    cluster_role = only(objects, "ClusterRole")
    assert missing(cluster_role["rules"], CLUSTER_NEEDS) == []
    cluster_verbs = {verb for rule in cluster_role["rules"] for verb in rule["verbs"]}
    assert cluster_verbs == READ, "namespaced mode must not write anything cluster-wide"
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces", "nodes"}

    args = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--namespace", "ai"]


@pytest.mark.parametrize("name", ["defaults", "watch-namespace"])
def test_rbac_is_least_privilege(name: str, tmp_path: Path) -> None:
    roles = [o for o in render(VALUE_SETS[name], tmp_path) if o["kind"] in ("Role", "ClusterRole")]
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            assert "nonResourceURLs" not in rule
            if {"secrets", "pods", "persistentvolumeclaims"} & set(rule["resources"]):
                assert set(rule["verbs"]) <= READ, f"read-only resources written: {rule}"
        granted = {
            (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
        }
        needed = {(g, r) for g, r, _ in NAMESPACED_NEEDS + CLUSTER_NEEDS} | {
            ("events.k8s.io", "events")
        }
        assert granted <= needed, f"grants beyond what the operator needs: {granted - needed}"


def test_optional_parts_are_off_by_default(tmp_path: Path) -> None:
    kinds = sorted(o["kind"] for o in render({}, tmp_path))
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"]


def test_service_monitor_scrapes_runtime_pods(tmp_path: Path) -> None:
    monitor = only(render(ALL_OPTIONAL, tmp_path), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "deepseek-runtime",
        "app.kubernetes.io/managed-by": "deepseek-operator",
    }
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "metrics"


def test_service_monitor_port_is_the_one_the_policy_opens_to_monitoring(tmp_path: Path) -> None:
    """The chart's ServiceMonitor names a port of the runtime Service the operator writes, and
    that port is the one its NetworkPolicy lets the monitoring namespace reach: not the API's."""
    from deepseek_operator.api import parse_spec
    from deepseek_operator.manifests import Target, network_policy, service

    (endpoint,) = only(render(ALL_OPTIONAL, tmp_path), "ServiceMonitor")["spec"]["endpoints"]
    doc = yaml.safe_load((REPO / "examples" / "smollm2-local.yaml").read_text())
    t = Target("r1", "ai", parse_spec(doc["spec"]))
    ports = {p["name"]: p["port"] for p in service(t)["spec"]["ports"]}
    monitoring = network_policy(t)["spec"]["ingress"][1]
    assert "namespaceSelector" in monitoring["from"][0]
    opened = {p["port"] for p in monitoring["ports"]}
    assert ports[endpoint["port"]] in opened and ports["http"] not in opened


def test_prometheus_adapter_exposes_the_queue_gauge_as_a_pods_metric(tmp_path: Path) -> None:
    maps = [o for o in render(ALL_OPTIONAL, tmp_path) if o["kind"] == "ConfigMap"]
    (adapter,) = [m for m in maps if m["metadata"]["name"].endswith("-prometheus-adapter")]
    assert adapter["metadata"]["namespace"] == "monitoring"
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    (queue,) = [r for r in rules if "deepseek_requests_waiting" in r["seriesQuery"]]
    assert queue["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert queue["resources"]["overrides"]["namespace"] == {"resource": "namespace"}
    assert queue["name"]["as"] == "deepseek_requests_waiting"
    assert "<<.Series>>" in queue["metricsQuery"] and "rate(" not in queue["metricsQuery"]


def test_grafana_dashboard_has_the_runtime_panels(tmp_path: Path) -> None:
    maps = [o for o in render(ALL_OPTIONAL, tmp_path) if o["kind"] == "ConfigMap"]
    (board,) = [m for m in maps if m["metadata"]["name"].endswith("-dashboard")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(board["data"]["deepseek-runtime.json"])
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "deepseek_requests_waiting",
        "deepseek_requests_running",
        "rate(deepseek_generation_tokens_total",
        "deepseek_time_to_first_token_seconds_bucket",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
    ):
        assert metric in expressions, metric


@pytest.mark.parametrize(
    "values",
    [{"bogus": 1}, {"watchNamespace": "Not_A_Namespace"}, {"image": {"pullPolicy": "Sometimes"}}],
)
def test_schema_refuses_bad_values(values: dict[str, Any], tmp_path: Path) -> None:
    values_file = tmp_path / "bad.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [helm_binary(), "template", RELEASE, str(CHART), "--values", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr or (
        "additional properties" in result.stderr or "does not match" in result.stderr
    ), result.stderr


def test_chart_crd_equals_generated_crd() -> None:
    generated = REPO / "crds" / CRD_FILE
    if not generated.exists():
        pytest.skip("crds/ not generated yet (make crds)")
    chart_copy = CHART / "crds" / CRD_FILE
    assert chart_copy.exists(), "charts/deepseek-operator/crds/ lacks the CRD: run make crds"
    assert chart_copy.read_bytes() == generated.read_bytes(), "chart CRD is stale: run make crds"
    crd = yaml.safe_load(generated.read_text())
    assert crd["spec"]["group"] == "deepseek.ai"
    assert crd["spec"]["names"]["kind"] == "DeepSeekDeployment"
