"""The local cluster a cluster benchmark runs on, and the working tree's CRD applied to it.

bench/reconcile.py and bench/autoscaling.py both reuse a running cluster (DEEPSEEK_CLUSTER_DIR)
and start one only when none is healthy; a cluster started here is stopped again at the end, one
found running is left as it was.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(REPO / "hack"))  # localcluster

from localcluster import config as cluster_config  # noqa: E402
from localcluster.lifecycle import down, up  # noqa: E402
from localcluster.state import healthy  # noqa: E402


@contextmanager
def local_cluster(*, real_node: bool = False, with_metrics: bool = False) -> Iterator[Path]:
    """The cluster's run directory, the running cluster's or one started for this benchmark."""
    run_dir = cluster_config.cluster_dir()
    started_here = not healthy(run_dir)
    if started_here:
        up(run_dir, real_node=real_node, with_metrics=with_metrics)
    try:
        yield run_dir
    finally:
        if started_here:
            down(run_dir)


def apply_crd(kubeconfig: Path) -> None:
    """The working tree's CRD (`deepseek-operator crd`), applied server-side: the benchmark
    measures this tree's operator, whatever version the cluster had before."""
    crd = subprocess.run(
        [str(VENV_BIN / "deepseek-operator"), "crd"], check=True, capture_output=True, text=True
    ).stdout
    kubectl = [str(VENV_BIN / "kubectl"), f"--kubeconfig={kubeconfig}"]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", "-"],
        input=crd,
        check=True,
        capture_output=True,
        text=True,
    )
