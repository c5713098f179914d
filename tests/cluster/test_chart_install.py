"""`helm install` of the operator chart into a real API server that enforces the restricted Pod
Security Standard; the pod lands on a kwok node and turns Ready; RBAC grants what the operator
needs (checked by the API server's own authorizer) and no more; `helm uninstall` is clean."""

from __future__ import annotations

import re

import pytest
from clusterkit import REPO, Helm, Kubectl, make_namespace, wait_until

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "deepseek-operator"
RELEASE = "dso"
FULLNAME = f"{RELEASE}-deepseek-operator"
WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ = ["get", "list", "watch"]
NAMESPACED_NEEDS = {
    "deepseekdeployments.deepseek.ai": WRITE,
    "deepseekdeployments.deepseek.ai/status": WRITE,
    "deepseekdeployments.deepseek.ai/scale": WRITE,
    "deployments.apps": WRITE,
    "services": WRITE,
    "configmaps": WRITE,
    "serviceaccounts": WRITE,
    "horizontalpodautoscalers.autoscaling": WRITE,
    "poddisruptionbudgets.policy": WRITE,
    "networkpolicies.networking.k8s.io": WRITE,
    "events": ["create", "patch"],
    "pods": READ,
    "secrets": READ,
    "persistentvolumeclaims": READ,
    "scaledobjects.keda.sh": WRITE,
    "servicemonitors.monitoring.coreos.com": WRITE,
}
CLUSTER_NEEDS = {"customresourcedefinitions.apiextensions.k8s.io": READ, "namespaces": READ}


def can_i_list(kubectl: Kubectl, user: str, namespace: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list`: the API server's own answer of what `user` may do."""
    out = kubectl("auth", "can-i", "--list", f"--as={user}", f"--namespace={namespace}").stdout
    granted: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+.*\[(.*)\]\s*$", line)
        if match and not match.group(1).startswith("/"):
            granted.setdefault(match.group(1), set()).update(match.group(2).split())
    return granted


def lacking(granted: dict[str, set[str]], needs: dict[str, list[str]]) -> dict[str, list[str]]:
    out = {}
    for resource, verbs in needs.items():
        have = granted.get(resource, set()) | granted.get("*.*", set())
        if "*" not in have and not set(verbs) <= have:
            out[resource] = sorted(set(verbs) - have)
    return out


def can_i(kubectl: Kubectl, verb: str, resource: str, user: str, namespace: str) -> bool:
    result = kubectl(
        "auth", "can-i", verb, resource, f"--as={user}", f"--namespace={namespace}", check=False
    )
    return result.stdout.strip() == "yes"


def install(helm: Helm, namespace: str, *values: str) -> None:
    helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--wait",
        "--timeout=120s",
        *[arg for value in values for arg in ("--set", value)],
    )


def assert_operator_pod_runs_on_a_kwok_node(kubectl: Kubectl, namespace: str) -> None:
    ns = kubectl.ns(namespace)
    pods = wait_until(
        lambda: ns.items("pods", f"app.kubernetes.io/instance={RELEASE}"), 60, "operator pod"
    )
    assert len(pods) == 1
    pod = pods[0]
    node = kubectl.get("node", pod["spec"]["nodeName"])
    assert node is not None
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert not any(
        name in pod["spec"]["containers"][0]["resources"].get("requests", {})
        for name in ("nvidia.com/gpu",)
    ), "the operator must not ask for a GPU"
    deployment = ns.get("deployment", FULLNAME)
    assert deployment is not None
    assert deployment["status"].get("readyReplicas") == 1


def assert_uninstall_is_clean(kubectl: Kubectl, helm: Helm, namespace: str) -> None:
    helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout=120s")
    selector = f"app.kubernetes.io/instance={RELEASE}"
    ns = kubectl.ns(namespace)
    wait_until(
        lambda: not ns.items("deployments,serviceaccounts,roles,rolebindings,configmaps", selector),
        60,
        "namespaced objects gone",
    )
    wait_until(lambda: not ns.items("pods", selector), 60, "operator pod gone")
    leftovers = [
        item["metadata"]["name"]
        for item in kubectl.items("clusterroles,clusterrolebindings", selector)
        if item["metadata"]["name"].endswith(f"-{namespace}")
    ]
    assert leftovers == []
    assert helm("list", "--namespace", namespace, "--short").stdout.strip() == ""


def test_cluster_wide_install(
    kubectl: Kubectl, helm: Helm, crd: dict[str, object], namespace: str
) -> None:
    install(helm, namespace)
    assert_operator_pod_runs_on_a_kwok_node(kubectl, namespace)

    user = f"system:serviceaccount:{namespace}:{FULLNAME}"
    elsewhere = make_namespace(kubectl, "t-chart-elsewhere")
    try:
        assert lacking(can_i_list(kubectl, user, elsewhere), NAMESPACED_NEEDS) == {}
        assert lacking(can_i_list(kubectl, user, elsewhere), CLUSTER_NEEDS) == {}
        # Least privilege: nothing it does not need.
        assert not can_i(kubectl, "create", "secrets", user, elsewhere)
        assert not can_i(kubectl, "create", "pods", user, elsewhere)
        assert not can_i(kubectl, "delete", "nodes", user, elsewhere)
        assert not can_i(kubectl, "create", "clusterrolebindings", user, elsewhere)
        assert not can_i(kubectl, "create", "customresourcedefinitions", user, elsewhere)
    finally:
        kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)

    assert_uninstall_is_clean(kubectl, helm, namespace)


def test_namespaced_install(
    kubectl: Kubectl, helm: Helm, crd: dict[str, object], namespace: str
) -> None:
    watched = make_namespace(kubectl, "t-chart-watched")
    other = make_namespace(kubectl, "t-chart-other")
    try:
        install(helm, namespace, f"watchNamespace={watched}")
        assert_operator_pod_runs_on_a_kwok_node(kubectl, namespace)
        deployment = kubectl.ns(namespace).get("deployment", FULLNAME)
        assert deployment is not None
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[-2:] == ["--namespace", watched]

        user = f"system:serviceaccount:{namespace}:{FULLNAME}"
        assert kubectl.ns(watched).get("role", FULLNAME) is not None
        assert lacking(can_i_list(kubectl, user, watched), NAMESPACED_NEEDS) == {}
        assert lacking(can_i_list(kubectl, user, other), CLUSTER_NEEDS) == {}
        for verb, resource in [("create", "deployments.apps"), ("list", "deepseekdeployments")]:
            assert can_i(kubectl, verb, resource, user, watched)
            assert not can_i(kubectl, verb, resource, user, other), f"{verb} {resource} leaks"

        assert_uninstall_is_clean(kubectl, helm, namespace)
        assert kubectl.ns(watched).get("role", FULLNAME) is None
    finally:
        for name in (watched, other):
            kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_notes_explain_the_next_step(
    kubectl: Kubectl, helm: Helm, crd: dict[str, object], namespace: str
) -> None:
    result = helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--dry-run=server",
        "--set",
        "keda.enabled=true",
        "--set",
        "metrics.prometheusAdapter.enabled=true",
    )
    assert "kubectl get dsd" in result.stdout
    assert "spec.autoscaling.mode: keda" in result.stdout
    assert "custom.metrics.k8s.io" in result.stdout
