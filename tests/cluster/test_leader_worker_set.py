"""A model larger than one node runs as a LeaderWorkerSet (sigs.k8s.io/lws) on the real API
server: without its CRD the resource says what to install and nothing is applied; with the CRD
of the LWS Go module (the local cluster installs it with its controller; a cluster without it
gets it from the module cache here) every child is accepted by the real schemas and the LWS
webhooks, the workload kind follows the plan, and the garbage collector removes the group with
its resource. test_leader_worker_set_groups runs the groups with the controller."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import (
    VENV_BIN,
    Kubectl,
    OperatorProcess,
    condition,
    dsd,
    versions,
    wait_until,
)

pytestmark = pytest.mark.cluster

LWS_MODULE = "sigs.k8s.io/lws"
LWS_VERSION = versions()["LWS_VERSION"]  # hack/versions.env, as the local cluster
LWS = "leaderworkersets.leaderworkerset.x-k8s.io"  # the CRD's name and kubectl's resource
# DeepSeek-R1 in int8: 8 GPUs on each of 2 nodes per replica on the fake nodes' 80 GB GPUs,
# which both serve it (no product pinned): one pod on each node.
GROUP = {"model": {"name": "deepseek-ai/DeepSeek-R1"}, "quantization": "int8"}
GROUP_SPEC = {**GROUP, "resources": {"gpu": {"product": None, "count": "auto"}}}
LEADER_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


def lws_crd_file() -> Path:
    """The LWS CRD of the pinned module version, from the Go module cache (downloaded through
    the module proxy when missing). Nothing is copied into the repository."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: the LWS CRD comes from its Go module", pytrace=False)
    with tempfile.TemporaryDirectory() as outside_any_module:
        found = subprocess.run(
            [go, "mod", "download", "-json", f"{LWS_MODULE}@{LWS_VERSION}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=outside_any_module,
            timeout=300,
        )
    module = Path(json.loads(found.stdout)["Dir"])
    return module / "config" / "crd" / "bases" / "leaderworkerset.x-k8s.io_leaderworkersets.yaml"


def crd_present(kubectl: Kubectl) -> bool:
    return kubectl.get("crd", LWS) is not None


def install_crd(kubectl: Kubectl, text: str) -> None:
    # Server-side: the CRD (1.3 MB) is far beyond the last-applied annotation's limit.
    kubectl("apply", "--server-side", "-f", "-", input=text, timeout=120)
    # Polled, not `kubectl wait`: that fails on a CRD whose status has no conditions yet.
    wait_until(
        lambda: (
            (condition(kubectl.get("crd", LWS) or {}, "Established") or {}).get("status") == "True"
        ),
        60,
        "the LWS CRD Established",
    )


def remove_crd(kubectl: Kubectl) -> None:
    kubectl("delete", "crd", LWS, "--ignore-not-found", "--wait=true", timeout=120)


@pytest.fixture
def without_lws_crd(kubectl: Kubectl) -> Iterator[None]:
    """A cluster that does not serve LeaderWorkerSets; one that does gets its CRD back after."""
    saved = kubectl("get", "crd", LWS, "-o", "yaml", check=False)
    if saved.returncode == 0:
        remove_crd(kubectl)
    yield
    if saved.returncode == 0:
        restored = yaml.safe_load(saved.stdout)
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            restored["metadata"].pop(key, None)
        restored.pop("status", None)
        install_crd(kubectl, yaml.safe_dump(restored))


@pytest.fixture
def lws_crd(kubectl: Kubectl) -> Iterator[None]:
    """The LWS CRD, from its Go module; removed afterwards unless the cluster had it."""
    had = crd_present(kubectl)
    if not had:
        install_crd(kubectl, lws_crd_file().read_text())
    yield
    if not had:
        remove_crd(kubectl)


def ready_condition(ns: Kubectl, name: str, reason: str) -> dict[str, Any] | None:
    cr = ns.get("dsd", name) or {}
    ready = condition(cr, "Ready")
    fresh = (cr.get("status") or {}).get("observedGeneration") == cr["metadata"]["generation"]
    return ready if ready and fresh and ready["reason"] == reason else None


def test_without_the_lws_crd_the_resource_says_what_to_install(
    kubectl: Kubectl, without_lws_crd: None, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    ns.apply(dsd("r1", GROUP_SPEC))
    ready = wait_until(
        lambda: ready_condition(ns, "r1", "LeaderWorkerSetNotInstalled"),
        60,
        "Ready=False/LeaderWorkerSetNotInstalled",
        describe=operator.tail,
    )
    assert ready["status"] == "False"
    assert "each replica needs 2 nodes of 8 GPUs" in ready["message"]
    assert "sigs.k8s.io/lws" in ready["message"]
    cr = ns.get("dsd", "r1")
    assert cr is not None and cr["status"]["phase"] == "Pending"
    assert (cr["status"]["gpuPlan"]["gpusPerNode"], cr["status"]["gpuPlan"]["nodes"]) == (8, 2)
    # Nothing half-applied: no Service, ConfigMap or Deployment without its pods' workload.
    for kind, name in [("service", "r1"), ("configmap", "r1-runtime"), ("deployment", "r1")]:
        assert ns.get(kind, name) is None, kind
    events = ns.json("events", "--field-selector", "involvedObject.name=r1")["items"]
    assert [e["reason"] for e in events].count("LeaderWorkerSetNotInstalled") == 1


def rendered(name: str, spec: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """`deepseek-operator render` of the resource: what the operator applies."""
    text = yaml.safe_dump(dsd(name, spec))
    out = subprocess.run(
        [str(VENV_BIN / "deepseek-operator"), "render", "-f", "-", "--namespace", namespace],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_the_real_lws_schema_accepts_the_group_and_the_workload_follows_the_plan(
    kubectl: Kubectl, lws_crd: None, namespace: str, operator: OperatorProcess
) -> None:
    ns = kubectl.ns(namespace)
    # The API server's own validation, strict: an unknown or misplaced field fails here rather
    # than being pruned on the way in.
    lws_doc = next(
        d for d in rendered("r1", GROUP_SPEC, namespace) if d["kind"] == "LeaderWorkerSet"
    )
    ns("create", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump(lws_doc))

    ns.apply(dsd("r1", {**GROUP_SPEC, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}))
    lws = wait_until(lambda: ns.get(LWS, "r1"), 60, "LeaderWorkerSet r1", describe=operator.tail)
    group, wanted = lws["spec"]["leaderWorkerTemplate"], lws_doc["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
    for role in ("leaderTemplate", "workerTemplate"):  # stored as applied: nothing pruned
        assert group[role]["spec"] == wanted[role]["spec"], role
    (owner,) = lws["metadata"]["ownerReferences"]
    assert owner["kind"] == "DeepSeekDeployment" and owner["controller"] is True
    assert ns.get("deployment", "r1") is None
    service = ns.get("service", "r1")
    assert service is not None and service["spec"]["selector"][LEADER_LABEL] == "0"
    hpa = wait_until(lambda: ns.get("hpa", "r1"), 30, "the HPA")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"

    table = ns("get", "dsd", "r1").stdout.splitlines()
    header = table[0].split()
    assert table[1].split()[header.index("NODES")] == "2"
    assert table[1].split()[header.index("GPUS")] == "8"

    # One node suffices in int4: the Deployment comes back and the LeaderWorkerSet goes.
    ns("patch", "dsd", "r1", "--type=merge", "-p", json.dumps({"spec": {"quantization": "int4"}}))
    wait_until(lambda: ns.get("deployment", "r1"), 60, "the Deployment", describe=operator.tail)
    wait_until(lambda: ns.get(LWS, "r1") is None, 60, "the LeaderWorkerSet gone")
    hpa = ns.get("hpa", "r1")
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"

    # And back; then the garbage collector removes the group with its resource.
    ns("patch", "dsd", "r1", "--type=merge", "-p", json.dumps({"spec": {"quantization": "int8"}}))
    wait_until(lambda: ns.get(LWS, "r1"), 60, "the LeaderWorkerSet again")
    wait_until(lambda: ns.get("deployment", "r1") is None, 60, "the Deployment gone")
    ns("delete", "dsd", "r1", "--wait=false")
    wait_until(lambda: ns.get(LWS, "r1") is None, 60, "the LeaderWorkerSet collected")
