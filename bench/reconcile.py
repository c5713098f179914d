#!/usr/bin/env python3
"""Reconcile benchmark: apply 1, 50 and 300 DeepSeekDeployments to the local control plane and
time what the operator does with them.

    .venv/bin/python bench/reconcile.py [--counts 1,50,300] [--mode none|hpa] [--idle 30]

For each count, in a fresh namespace with a freshly started operator (working tree, watching that
namespace): apply -> all children created and apply -> status Ready (p50, p99, per CR, from
watch events), total convergence, the operator's peak RSS and CPU while converging, and its CPU
over an idle window afterwards. Uses a running cluster (DEEPSEEK_CLUSTER_DIR) or starts one with
hack/cluster.py and stops it again. Writes bench/results/reconcile.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
GROUP, VERSION, PLURAL = "deepseek.ai", "v1alpha1", "deepseekdeployments"
EXTRA_NODES = 40  # 8 GPUs each: room for 300 one-GPU replicas beside the two default nodes
TARGETS = {
    "p50 apply->children, 1 CR": "< 0.5 s",
    "300 CRs converged": "< 60 s",
    "operator RSS": "< 250 MB",
    "idle CPU": "near zero",
}


def load_cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cluster", REPO / "hack" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["cluster"] = module
    spec.loader.exec_module(module)
    return module


cluster = load_cluster_module()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def cr(name: str, mode: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {
            "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "source": {"image": {"path": "/models/r1-distill-qwen-7b"}},
        },
        "quantization": "int8",
        "resources": {"gpu": {"count": 1}},
    }
    if mode == "hpa":
        spec["autoscaling"] = {"mode": "hpa", "minReplicas": 1, "maxReplicas": 2}
    else:
        spec["replicas"] = 1
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DeepSeekDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


# --- watching ------------------------------------------------------------------------------------

CHILD_KINDS = [
    "deployments",
    "services",
    "configmaps",
    "serviceaccounts",
    "networkpolicies",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
]


@dataclass
class Observations:
    """First time (monotonic) each child and each Ready status was seen, by CR name."""

    children: dict[str, dict[str, float]] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw_child(self, kind: str, name: str, at: float) -> None:
        owner = name.removesuffix("-runtime") if kind == "configmaps" else name
        with self.lock:
            self.children.setdefault(owner, {}).setdefault(kind, at)

    def saw_ready(self, name: str, at: float) -> None:
        with self.lock:
            self.ready.setdefault(name, at)


def list_function(kind: str, namespace: str) -> Callable[..., Any]:
    core, apps = client.CoreV1Api(), client.AppsV1Api()
    functions: dict[str, Callable[..., Any]] = {
        "deployments": apps.list_namespaced_deployment,
        "services": core.list_namespaced_service,
        "configmaps": core.list_namespaced_config_map,
        "serviceaccounts": core.list_namespaced_service_account,
        "networkpolicies": client.NetworkingV1Api().list_namespaced_network_policy,
        "poddisruptionbudgets": client.PolicyV1Api().list_namespaced_pod_disruption_budget,
        "horizontalpodautoscalers": (
            client.AutoscalingV2Api().list_namespaced_horizontal_pod_autoscaler
        ),
    }
    return functions[kind]


def watch_children(kind: str, namespace: str, seen: Observations, stop: threading.Event) -> None:
    fn = list_function(kind, namespace)
    selector = "app.kubernetes.io/managed-by=deepseek-operator"
    while not stop.is_set():
        w = watch.Watch()
        with contextlib.suppress(Exception):
            for event in w.stream(fn, namespace, label_selector=selector, timeout_seconds=5):
                if event["type"] == "ADDED":
                    seen.saw_child(kind, event["object"].metadata.name, time.monotonic())
                if stop.is_set():
                    w.stop()


def watch_ready(namespace: str, seen: Observations, stop: threading.Event) -> None:
    api = client.CustomObjectsApi()
    while not stop.is_set():
        w = watch.Watch()
        with contextlib.suppress(Exception):
            for event in w.stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                timeout_seconds=5,
            ):
                obj = event["object"]
                status = obj.get("status") or {}
                if status.get("phase") == "Ready" and status.get("observedGeneration") == obj[
                    "metadata"
                ].get("generation"):
                    seen.saw_ready(obj["metadata"]["name"], time.monotonic())
                if stop.is_set():
                    w.stop()


# --- the operator --------------------------------------------------------------------------------


@contextlib.contextmanager
def operator(namespace: str, kubeconfig: Path, log_path: Path) -> Iterator[psutil.Process]:
    port = cluster.free_ports(1)[0]
    args = [
        str(VENV_BIN / "deepseek-operator"),
        "run",
        "--namespace",
        namespace,
        f"--liveness=http://127.0.0.1:{port}/healthz",
    ]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"operator exited {process.returncode}; see {log_path}")
            url = f"http://127.0.0.1:{port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"operator not healthy in 60 s; see {log_path}")
        yield psutil.Process(process.pid)  # `run` execs kopf: the same pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Sampler(threading.Thread):
    """Peak RSS of the operator, sampled every 0.2 s."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak_rss = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            time.sleep(0.2)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


# --- one round -----------------------------------------------------------------------------------


@dataclass
class Round:
    count: int
    mode: str
    children_s: list[float]
    ready_s: list[float]
    converged_s: float
    apply_s: float
    peak_rss_mb: float
    busy_cpu_s: float
    idle_cpu_percent: float
    idle_window_s: float
    missing: int


def run_round(
    count: int, mode: str, idle_s: float, kubeconfig: Path, timeout: float, logs: Path
) -> Round:
    namespace = f"bench-{count}-{mode}"
    core = client.CoreV1Api()
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(namespace)
    wait(lambda: not namespace_exists(core, namespace), 120, f"old {namespace} gone")
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    wait(lambda: service_account_exists(core, namespace), 60, "default ServiceAccount")

    kinds = [k for k in CHILD_KINDS if mode == "hpa" or k != "horizontalpodautoscalers"]
    seen = Observations()
    stop = threading.Event()
    threads = [
        threading.Thread(target=watch_children, args=(k, namespace, seen, stop), daemon=True)
        for k in kinds
    ]
    threads.append(threading.Thread(target=watch_ready, args=(namespace, seen, stop), daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let every watch open before the first create

    api = client.CustomObjectsApi()
    names = [f"m-{i:03d}" for i in range(count)]
    applied: dict[str, float] = {}
    with operator(namespace, kubeconfig, logs / f"operator-{namespace}.log") as proc:
        sampler = Sampler(proc)
        sampler.start()
        cpu_before = cpu_seconds(proc)
        start = time.monotonic()
        for name in names:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, cr(name, mode))
            applied[name] = time.monotonic()
        apply_s = time.monotonic() - start

        def converged() -> bool:
            with seen.lock:
                return len(seen.ready) >= count

        with contextlib.suppress(TimeoutError):
            wait(converged, timeout, f"{count} Ready")
        end = time.monotonic()
        busy_cpu = cpu_seconds(proc) - cpu_before

        # Idle: nothing changes; what the operator burns now is timers and watch upkeep.
        time.sleep(2.0)
        idle_before, idle_start = cpu_seconds(proc), time.monotonic()
        time.sleep(idle_s)
        idle_window = time.monotonic() - idle_start
        idle_cpu = (cpu_seconds(proc) - idle_before) / idle_window * 100
        sampler.stop.set()
        peak = sampler.peak_rss
    stop.set()

    children_s, ready_s, missing = [], [], 0
    for name in names:
        got = seen.children.get(name, {})
        if len(got) == len(kinds):
            children_s.append(max(got.values()) - applied[name])
        else:
            missing += 1
        if name in seen.ready:
            ready_s.append(seen.ready[name] - applied[name])
    last_ready = max(seen.ready.values(), default=end)
    # Gone before the next round starts: its garbage collection would load the next round.
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(namespace)
    with contextlib.suppress(TimeoutError):
        wait(lambda: not namespace_exists(core, namespace), 300, f"{namespace} deleted")
    return Round(
        count=count,
        mode=mode,
        children_s=children_s,
        ready_s=ready_s,
        converged_s=(last_ready - start) if len(seen.ready) >= count else float("inf"),
        apply_s=apply_s,
        peak_rss_mb=peak / 1e6,
        busy_cpu_s=busy_cpu,
        idle_cpu_percent=idle_cpu,
        idle_window_s=idle_window,
        missing=missing + (count - len(ready_s)),
    )


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def service_account_exists(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except client.ApiException:
        return False
    return True


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- setup and report ----------------------------------------------------------------------------


def add_gpu_nodes(core: client.CoreV1Api, run_dir: Path) -> list[str]:
    """More fake 8-GPU nodes, created like hack/cluster.py creates its own (kwok readies them)."""
    state = cluster.read_state(run_dir)
    api = cluster.Api(state["server"], state["token"], Path(state["ca_file"]))
    names = [f"bench-gpu-{i:02d}" for i in range(EXTRA_NODES)]
    for name in names:
        api.create("/api/v1/nodes", cluster.node_manifest(name, "NVIDIA-H100-80GB-HBM3", 81559))
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


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; etcd, kube-apiserver, controller-manager, "
        f"scheduler, kwok and the operator all on the same cores"
    )


def report(rounds: list[Round], versions: dict[str, str], idle_s: float) -> str:
    lines = [
        "# Reconcile benchmark",
        "",
        f"Machine: {machine()}.",
        f"Control plane: Kubernetes {versions.get('K8S_VERSION')}, etcd "
        f"{versions.get('ETCD_VERSION')}, kwok {versions.get('KWOK_VERSION')} "
        "(hack/cluster.py); pods are made Ready by kwok, nothing runs in them.",
        "Each round: a fresh namespace and a freshly started operator (`deepseek-operator run "
        "--namespace`, admin token), CRs created back to back with the Python client; times "
        "are from the client's watch events (first ADDED of the last child; first Ready status "
        "with observedGeneration == generation).",
        "",
        "| CRs | autoscaling | create all (s) | apply->children p50 / p99 (s) | "
        "apply->Ready p50 / p99 (s) | converged (s) | peak RSS (MB) | CPU while converging (s)"
        f" | idle CPU over {idle_s:.0f} s (% of a core) | missing |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rounds:
        lines.append(
            f"| {r.count} | {r.mode} | {r.apply_s:.2f} | "
            f"{percentile(r.children_s, 50):.3f} / {percentile(r.children_s, 99):.3f} | "
            f"{percentile(r.ready_s, 50):.3f} / {percentile(r.ready_s, 99):.3f} | "
            f"{r.converged_s:.1f} | {r.peak_rss_mb:.0f} | {r.busy_cpu_s:.2f} | "
            f"{r.idle_cpu_percent:.2f} | {r.missing} |"
        )
    lines += ["", "Against the targets:", ""]
    lines += verdicts(rounds)
    lines.append("")
    return "\n".join(lines)


def verdicts(rounds: list[Round]) -> list[str]:
    def by_mode(values: dict[str, float], unit: str) -> str:
        return ", ".join(f"{v:.3g} {unit} ({mode})" for mode, v in values.items())

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out = []
    one = {r.mode: percentile(r.children_s, 50) for r in rounds if r.count == 1}
    if one:
        ok = all(v < 0.5 for v in one.values())
        out.append(
            f"- p50 apply->children with 1 CR {TARGETS['p50 apply->children, 1 CR']}: "
            f"{by_mode(one, 's')}: {met(ok)}"
        )
    big = {r.mode: r.converged_s for r in rounds if r.count == 300}
    if big:
        ok = all(v < 60 for v in big.values())
        out.append(
            f"- 300 CRs converged {TARGETS['300 CRs converged']}: {by_mode(big, 's')}: {met(ok)}"
        )
    rss = max(r.peak_rss_mb for r in rounds)
    out.append(f"- operator RSS {TARGETS['operator RSS']}: at most {rss:.0f} MB: {met(rss < 250)}")
    idle = {f"{r.count} CRs {r.mode}": r.idle_cpu_percent for r in rounds}
    worst = max(idle.values())
    out.append(
        f"- idle CPU {TARGETS['idle CPU']}: at most {worst:.2f} % of a core "
        f"({max(idle, key=lambda k: idle[k])}; the minute-by-minute status resync), "
        f"{met(worst < 5)} (read as < 5 % of one core)"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,50,300")
    parser.add_argument("--mode", default="none,hpa", help="none, hpa or both (none,hpa)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--timeout", type=float, default=180.0, help="per round")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reconcile.md")
    args = parser.parse_args(argv)

    run_dir = cluster.cluster_dir()
    started_here = not cluster.healthy(run_dir)
    if started_here:
        cluster.up(run_dir)
    kubeconfig = run_dir / "kubeconfig"
    logs = run_dir / "bench-logs"
    logs.mkdir(exist_ok=True)
    config.load_kube_config(str(kubeconfig))
    nodes: list[str] = []
    rounds: list[Round] = []
    try:
        crd = subprocess.run(
            [str(VENV_BIN / "deepseek-operator"), "crd"], check=True, capture_output=True, text=True
        ).stdout
        subprocess.run(
            [
                str(VENV_BIN / "kubectl"),
                f"--kubeconfig={kubeconfig}",
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
            ],
            input=crd,
            check=True,
            capture_output=True,
            text=True,
        )
        core = client.CoreV1Api()
        nodes = add_gpu_nodes(core, run_dir)
        for mode in args.mode.split(","):
            for count in (int(c) for c in args.counts.split(",")):
                print(f"[bench] {count} CRs, autoscaling {mode} ...", file=sys.stderr, flush=True)
                result = run_round(count, mode, args.idle, kubeconfig, args.timeout, logs)
                rounds.append(result)
                print(
                    f"[bench]   children p50 {percentile(result.children_s, 50):.3f}s, ready p50 "
                    f"{percentile(result.ready_s, 50):.3f}s, converged {result.converged_s:.1f}s, "
                    f"rss {result.peak_rss_mb:.0f}MB, idle cpu {result.idle_cpu_percent:.2f}%",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        core = client.CoreV1Api()
        for name in nodes:
            with contextlib.suppress(client.ApiException):
                core.delete_node(name)
        if started_here:
            cluster.down(run_dir)
    text = report(rounds, cluster.versions(), args.idle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
