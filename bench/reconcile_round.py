"""bench/reconcile.py's rounds: a fresh namespace, a freshly started operator, N CRs created
back to back, then what the operator cost while converging and while idle."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from devkit.ports import free_ports
from kubernetes import client

from reconcile_watch import (
    CHILD_KINDS,
    GROUP,
    PLURAL,
    VERSION,
    Observations,
    watch_children,
    watch_ready,
)

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


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


@contextlib.contextmanager
def operator(namespace: str, kubeconfig: Path, log_path: Path) -> Iterator[psutil.Process]:
    port = free_ports(1)[0]
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

        # Idle: nothing changes; what the operator burns now is watch upkeep (and, once every
        # DEEPSEEK_DRIFT_REPAIR_S, a drift repair of every CR).
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
