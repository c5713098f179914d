"""Autoscaling on queue length with KEDA (`autoscaling.mode: keda`), on real pods: the operator
writes a ScaledObject whose Prometheus trigger sums deepseek_requests_waiting; KEDA's operator
(built from its module, hack/build-keda.sh) queries Prometheus and makes an HPA on an external
metric, which its metrics server serves as external.metrics.k8s.io to the real HPA controller.

KEDA runs only while this module does (`localcluster keda-up`, then `keda-down`): the rest of
the suite sees a cluster without it, as a user's without KEDA (test_conditions checks what the
CR says then). The order of the tests is the story: the CR's Autoscaling condition follows the
ScaledObject's own Ready condition, False with KEDA's reason while the trigger cannot read
Prometheus and True once it can; then the same scaling episode as with the HPA, no request
failing in either direction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import Kubectl, condition, describe, localcluster_cli, wait_until
from realnode import RealOperator, autoscaled_objects, cluster_part, node_images, wait_serving
from scaling import scale_up_and_down

pytestmark = pytest.mark.timeout(1800)

NAME = "smollm2-keda"  # not the HPA test's name: that one may still be draining
# KEDA's default pollingInterval (30 s) is how often its own loop reads the trigger, and so how
# soon its Ready condition changes; the HPA reads the metric every 15 s.
KEDA_PERIOD = 30.0
# Nothing listens on the discard port on loopback: Prometheus cannot be read there.
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def keda(cluster: Any) -> Iterator[dict[str, Any]]:
    """KEDA in the suite's cluster for this module; left as found (a cluster started with
    --keda keeps it)."""
    started_here = "keda" not in _state(cluster.run_dir)
    result = localcluster_cli("keda-up", run_dir=cluster.run_dir)
    if result.returncode != 0:
        pytest.fail(f"localcluster keda-up failed:\n{result.stderr[-4000:]}", pytrace=False)
    yield cluster_part(cluster.run_dir, "keda", "--keda")
    if started_here:
        result = localcluster_cli("keda-down", run_dir=cluster.run_dir)
        assert result.returncode == 0, result.stderr[-4000:]


def _state(run_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((run_dir / "state.json").read_text())
    return state


def prometheus_of(run_dir: Path) -> str:
    url: str = cluster_part(run_dir, "metrics", "--metrics")["prometheus"]
    return url


@pytest.fixture(scope="module")
def scaled(
    cluster: Any, kubectl: Kubectl, real_operator: RealOperator, keda: dict[str, Any]
) -> Iterator[tuple[Kubectl, str]]:
    """SmolLM2 with autoscaling.mode keda, Ready with one pod. KEDA's operator is a host
    process here, so it reaches Prometheus on loopback."""
    ns = kubectl.ns(real_operator.watched)
    prometheus = prometheus_of(cluster.run_dir)
    runtime = node_images(cluster.run_dir)["runtime"]
    ns.apply(*autoscaled_objects(runtime, NAME, mode="keda", prometheusAddress=prometheus))
    served = wait_serving(ns, NAME)
    yield ns, served.cluster_ip
    # Deleted while KEDA still runs: its finalizer on the ScaledObject needs its operator.
    ns("delete", "dsd", NAME, "--wait=true", "--timeout=120s", check=False)


def autoscaling(ns: Kubectl, status: str) -> dict[str, Any] | None:
    cr = ns.get("dsd", NAME)
    cond = condition(cr, "Autoscaling") if cr else None
    return cond if cond and cond["status"] == status else None


def scaled_object_ready(ns: Kubectl) -> dict[str, Any] | None:
    found = ns.get("scaledobject", NAME)
    return condition(found, "Ready") if found else None


def set_prometheus(ns: Kubectl, address: str) -> None:
    patch = f'{{"spec": {{"autoscaling": {{"prometheusAddress": "{address}"}}}}}}'
    ns("patch", "dsd", NAME, "--type=merge", "-p", patch)


def explain(ns: Kubectl) -> str:
    return describe(ns, NAME) + str(ns.get("scaledobject", NAME))


def wait_reading(ns: Kubectl) -> dict[str, Any]:
    """Autoscaling=True with KEDA's own Ready reason: its trigger reads Prometheus."""
    cond = wait_until(
        lambda: autoscaling(ns, "True"), 4 * KEDA_PERIOD,
        "Autoscaling=True: KEDA's ScaledObject Ready", interval=2, describe=lambda: explain(ns),
    )  # fmt: skip
    ready = scaled_object_ready(ns) or {}
    assert ready.get("status") == "True" and cond["reason"] == ready["reason"], (cond, ready)
    return cond


def test_autoscaling_false_with_kedas_reason_while_prometheus_cannot_be_read(
    scaled: tuple[Kubectl, str],
) -> None:
    ns, _ip = scaled
    prometheus = (ns.get("dsd", NAME) or {})["spec"]["autoscaling"]["prometheusAddress"]
    wait_reading(ns)  # first it reads the gauge, so that what follows is Prometheus' absence
    set_prometheus(ns, UNREACHABLE)
    try:
        cond = wait_until(
            lambda: autoscaling(ns, "False"), 4 * KEDA_PERIOD,
            "Autoscaling=False while KEDA cannot reach Prometheus", interval=2,
            describe=lambda: explain(ns),
        )  # fmt: skip
        # KEDA's verdict, passed through: the ScaledObject's Ready=False and its reason.
        ready = scaled_object_ready(ns)
        assert ready and ready["status"] == "False", ready
        assert cond["reason"] == ready["reason"] == "TriggerError", (cond, ready)
        assert cond["message"] == f"ScaledObject {NAME}: {ready['message']}", cond
        # The ScaledObject the operator wrote asks the unreachable address.
        trigger = (ns.get("scaledobject", NAME) or {})["spec"]["triggers"][0]
        assert trigger["metadata"]["serverAddress"] == UNREACHABLE, trigger
    finally:
        set_prometheus(ns, prometheus)
    wait_reading(ns)


def test_keda_scales_real_pods_on_queue_length_and_no_request_fails(
    cluster: Any, scaled: tuple[Kubectl, str]
) -> None:
    ns, cluster_ip = scaled
    wait_reading(ns)
    # KEDA made the HPA that does the scaling, on its external metric.
    hpa = ns.get("hpa", f"keda-hpa-{NAME}") or {}
    assert hpa["spec"]["metrics"][0]["type"] == "External", hpa
    scale_up_and_down(
        ns, NAME, cluster_ip, prometheus_of(cluster.run_dir),
        lambda: str(ns.get("scaledobject", NAME)) + str(ns.get("hpa", f"keda-hpa-{NAME}")),
    )  # fmt: skip
