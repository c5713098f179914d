"""python3 -m localcluster up|down|status|env"""

from __future__ import annotations

import argparse

from . import __doc__ as package_doc
from .config import ClusterError, cluster_dir, log
from .lifecycle import build_images, down, keda_down, keda_up, up
from .state import healthy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=package_doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command", choices=["up", "down", "status", "env", "images", "keda-up", "keda-down"]
    )
    parser.add_argument("--dir", help="run dir (default: $DEEPSEEK_CLUSTER_DIR or .run/cluster)")
    parser.add_argument("--skip-build", action="store_true", help="do not run the build first")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="add a real node (containerd, kubelet, kube-proxy) that runs the project's images",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="with --real-node: Prometheus and prometheus-adapter (custom.metrics.k8s.io for HPAs)",
    )
    parser.add_argument(
        "--keda",
        action="store_true",
        help="with --metrics: KEDA's operator and metrics server (external.metrics.k8s.io)",
    )
    args = parser.parse_args(argv)
    run_dir = cluster_dir(args.dir)
    try:
        if args.command == "up":
            up(
                run_dir,
                skip_build=args.skip_build,
                real_node=args.real_node,
                with_metrics=args.metrics,
                with_keda=args.keda,
            )
        elif args.command == "keda-up":
            keda_up(run_dir, skip_build=args.skip_build)
        elif args.command == "keda-down":
            keda_down(run_dir)
        elif args.command == "down":
            down(run_dir)
        elif args.command == "status":
            if not healthy(run_dir):
                log(f"no healthy cluster in {run_dir}")
                return 1
            log(f"healthy: export KUBECONFIG={run_dir / 'kubeconfig'}")
        elif args.command == "images":
            for role, ref in build_images(run_dir).items():
                print(f"{role}={ref}")
        else:
            print(f"export KUBECONFIG={run_dir / 'kubeconfig'}")
    except ClusterError as error:
        log(f"FAILED: {error}")
        return 1
    return 0
