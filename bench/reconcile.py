#!/usr/bin/env python3
"""Reconcile benchmark: apply 1, 50 and 300 DeepSeekDeployments to the local control plane and
time what the operator does with them.

    .venv/bin/python bench/reconcile.py [--counts 1,50,300] [--mode none|hpa] [--idle 30]

For each count, in a fresh namespace with a freshly started operator (working tree, watching that
namespace): apply -> all children created and apply -> status Ready (p50, p99, per CR, from
watch events), total convergence, the operator's peak RSS and CPU while converging, and its CPU
over an idle window afterwards. Uses a running cluster (DEEPSEEK_CLUSTER_DIR) or starts one with
hack/localcluster and stops it again. Writes bench/results/reconcile.md.

Files: reconcile_watch.py (what is seen when), reconcile_round.py (one round),
reconcile_report.py (the table).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))  # devkit and localcluster

from devkit.stats import percentile  # noqa: E402
from kubernetes import client, config  # noqa: E402
from localcluster import config as cluster_config  # noqa: E402
from localcluster.api import Api  # noqa: E402
from localcluster.nodes import node_manifest  # noqa: E402
from localcluster.state import read_state  # noqa: E402

from bench_cluster import apply_crd, local_cluster  # noqa: E402
from reconcile_report import report  # noqa: E402
from reconcile_round import Round, run_round, wait  # noqa: E402

EXTRA_NODES = 40  # 8 GPUs each: room for 300 one-GPU replicas beside the two default nodes


def add_gpu_nodes(core: client.CoreV1Api, run_dir: Path) -> list[str]:
    """More fake 8-GPU nodes, created like hack/localcluster creates its own (kwok readies them)."""
    state = read_state(run_dir)
    api = Api(state["server"], state["token"], Path(state["ca_file"]))
    names = [f"bench-gpu-{i:02d}" for i in range(EXTRA_NODES)]
    for name in names:
        api.create("/api/v1/nodes", node_manifest(name, "NVIDIA-H100-80GB-HBM3", 81559))
    wait(lambda: all_nodes_ready(core, names), 120, "bench nodes Ready")
    return names


def all_nodes_ready(core: client.CoreV1Api, names: list[str]) -> bool:
    ready = set()
    for node in core.list_node().items:
        status, spec, meta = node.status, node.spec, node.metadata
        if status is None or meta is None:
            continue
        conditions = {c.type: c.status for c in status.conditions or []}
        if conditions.get("Ready") == "True" and not (spec and spec.taints):
            ready.add(meta.name)
    return set(names) <= ready


def one_round(
    count: int, mode: str, args: argparse.Namespace, kubeconfig: Path, logs: Path
) -> Round:
    print(f"[bench] {count} CRs, autoscaling {mode} ...", file=sys.stderr, flush=True)
    result = run_round(count, mode, args.idle, kubeconfig, args.timeout, logs)
    print(
        f"[bench]   children p50 {percentile(result.children_s, 50):.3f}s, ready p50 "
        f"{percentile(result.ready_s, 50):.3f}s, converged {result.converged_s:.1f}s, "
        f"rss {result.peak_rss_mb:.0f}MB, idle cpu {result.idle_cpu_percent:.2f}%",
        file=sys.stderr,
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,50,300")
    parser.add_argument("--mode", default="none,hpa", help="none, hpa or both (none,hpa)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--timeout", type=float, default=180.0, help="per round")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reconcile.md")
    args = parser.parse_args(argv)

    rounds: list[Round] = []
    with local_cluster() as run_dir:
        kubeconfig = run_dir / "kubeconfig"
        logs = run_dir / "bench-logs"
        logs.mkdir(exist_ok=True)
        config.load_kube_config(str(kubeconfig))
        apply_crd(kubeconfig)
        core = client.CoreV1Api()
        nodes = add_gpu_nodes(core, run_dir)
        try:
            for mode in args.mode.split(","):
                for count in (int(c) for c in args.counts.split(",")):
                    rounds.append(one_round(count, mode, args, kubeconfig, logs))
        finally:
            for name in nodes:
                with contextlib.suppress(client.ApiException):
                    core.delete_node(name)
    text = report(rounds, cluster_config.versions(), args.idle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
