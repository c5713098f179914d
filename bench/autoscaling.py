#!/usr/bin/env python3
"""Autoscaling episode on real pods: the HPA scales SmolLM2's runtime on its queue length.

    .venv/bin/python bench/autoscaling.py [--concurrency 16] [--max-tokens 48] [--hold 60]

On the local cluster with a real node and the metrics chain (`up --real-node --metrics`; a
running one is reused, else one is started and stopped again): the operator's image installed by
its chart, one DeepSeekDeployment (autoscaling 1..3, target queue 2 per pod, scale-down window
20 s), then ``concurrency`` clients holding long chat requests through the Service until a second
pod is Ready and ``hold`` seconds more, then 2 clients (requests in flight while pods are
removed) until the Deployment is back to one pod.
Writes bench/results/autoscaling.md and autoscaling.png (queue length and replicas over time).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit and localcluster
sys.path.insert(0, str(REPO / "tests" / "cluster"))  # the real-node suite's own helpers

from clusterkit import VENV_BIN, Helm, Kubectl, release_namespace, versions, wait_until  # noqa: E402
from devkit.episode import Sampler, prometheus_query  # noqa: E402
from devkit.loadgen import Load  # noqa: E402
from localcluster.state import read_state  # noqa: E402
from realnode import (  # noqa: E402
    AUTOSCALED,
    AUTOSCALING,
    RELEASE,
    autoscaled_objects,
    install_operator,
    node_images,
    wait_serving,
)

from autoscaling_report import Episode, write_report  # noqa: E402
from bench_cluster import apply_crd, local_cluster  # noqa: E402

NAME = AUTOSCALED


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def episode(ns: Kubectl, cluster_ip: str, prometheus: str, args: argparse.Namespace) -> Episode:
    def replicas() -> tuple[int, int]:
        deploy = ns.get("deployment", NAME) or {}
        spec, status = deploy.get("spec", {}), deploy.get("status", {})
        return int(spec.get("replicas") or 0), int(status.get("readyReplicas") or 0)

    query = f'deepseek_requests_waiting{{namespace="{ns.namespace}",service="{NAME}"}}'
    sampler = Sampler(replicas, lambda: prometheus_query(prometheus, query)).start()
    load = Load(f"http://{cluster_ip}:8080/v1", args.concurrency, args.max_tokens).start()
    log(f"{args.concurrency} clients started")
    try:
        wait_until(lambda: replicas()[1] >= 2, 900, "a second pod Ready", interval=1)
        second_ready = time.monotonic() - load.started
        log(f"second pod Ready after {second_ready:.0f}s; holding the load {args.hold:.0f}s")
        time.sleep(args.hold)
    finally:
        tally = load.stop()
    log(f"load dropped to 2 clients: {tally.ok} ok, {tally.failed} failed so far")
    trickle = Load(f"http://{cluster_ip}:8080/v1", 2, 16).start()  # in flight while pods go
    try:
        wait_until(lambda: replicas() == (1, 1), 600, "back to one pod", interval=1)
        one_pod = time.monotonic() - load.stopped
        time.sleep(10)  # a few samples more, so the plot shows the one pod left
    finally:
        down_tally = trickle.stop()
        samples = sampler.stop()
    log(f"one pod {one_pod:.0f}s after the load dropped; trickle: {down_tally.ok} ok, "
        f"{down_tally.failed} failed")  # fmt: skip
    return Episode(
        samples=samples,
        load_started=sampler.at(load.started),
        load_stopped=sampler.at(load.stopped),
        second_pod_ready_s=second_ready,
        back_to_one_s=one_pod,
        ok=tally.ok + down_tally.ok,
        failed=tally.failed + down_tally.failed,
        errors=dict(tally.errors + down_tally.errors),
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        autoscaling=AUTOSCALING,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds of load after scale-up")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "autoscaling.md")
    args = parser.parse_args(argv)

    with local_cluster(real_node=True, with_metrics=True) as run_dir:
        state = read_state(run_dir) or {}
        if not state.get("metrics"):
            raise SystemExit(f"the cluster in {run_dir} runs without --metrics: down it first")
        apply_crd(run_dir / "kubeconfig")
        kubectl = Kubectl(VENV_BIN / "kubectl", run_dir / "kubeconfig")
        helm = Helm(Path(versions()["BIN"]) / "helm", run_dir / "kubeconfig")
        images = node_images(run_dir)
        operator = install_operator(kubectl, helm, images["operator"])
        try:
            ns = kubectl.ns(operator.watched)
            ns.apply(*autoscaled_objects(images["runtime"]))
            served = wait_serving(ns, NAME)
            log(f"{NAME} serving on {served.cluster_ip}; waiting for the HPA to read the metric")
            wait_until(lambda: hpa_reads_metric(ns), 180, "the HPA reading the queue", interval=2)
            result = episode(ns, served.cluster_ip, state["metrics"]["prometheus"], args)
            write_report(result, args.out)
            log(f"wrote {args.out} and {args.out.with_suffix('.png')}")
        finally:
            helm("uninstall", RELEASE, "--namespace", operator.namespace, "--wait", check=False)
            release_namespace(kubectl, operator.watched)
            release_namespace(kubectl, operator.namespace)
    return 0


def hpa_reads_metric(ns: Kubectl) -> bool:
    hpa = ns.get("hpa", NAME) or {}
    conditions = hpa.get("status", {}).get("conditions") or []
    return any(c["type"] == "ScalingActive" and c["status"] == "True" for c in conditions)


if __name__ == "__main__":
    sys.exit(main())
