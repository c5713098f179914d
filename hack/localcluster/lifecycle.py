"""`up` and `down`: idempotent, and stopping only what was recorded."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import images, keda, lws, metrics, netpol, realnode
from .api import Api, probe
from .config import APISERVER_TIMEOUT_S, COMPONENT_TIMEOUT_S, NODE_IP, REPO, ClusterError, log
from .control_plane import components, prepare, seed
from .processes import Component, stop_pids, wait_for
from .state import healthy, read_state, recorded_components, write_state


def wait_healthy(item: Component, ca: Path) -> None:
    ca_file = ca if item.health_url.startswith("https") else None
    wait_for(
        f"{item.name} /healthz", lambda: probe(item.health_url, ca_file), COMPONENT_TIMEOUT_S, item
    )


def down(run_dir: Path) -> None:
    state = read_state(run_dir)
    if state:
        bin_dir = Path(state["bin_dir"]) if state.get("bin_dir") else None
        realnode.down(run_dir, state, bin_dir)
        stop_pids(list(recorded_components(state)))
    if run_dir.exists():
        shutil.rmtree(run_dir)
        log(f"removed {run_dir}")


def node_images() -> dict[str, str]:
    missing = realnode.missing_tools()
    if missing:
        raise ClusterError(
            f"the real node needs {', '.join(missing)}: run `make node-packages` "
            "(hack/node-packages.sh installs them from Debian's packages)"
        )
    venv = REPO / ".venv"
    if not (venv / "bin" / "uv").exists():
        raise ClusterError("the runtime image installs the venv's versions: run `make install`")
    return images.build_all(venv)


def build_images(run_dir: Path) -> dict[str, str]:
    """The images, and into the real node's containerd when one is up."""
    built = node_images()
    state = read_state(run_dir) if healthy(run_dir) else None
    if state and state.get("real_node"):
        for ref in built.values():
            images.load(ref, Path(state["real_node"]["socket"]))
        state["real_node"]["images"] = built  # what the tests and the demo deploy
        write_state(run_dir, state)
    return built


def launcher(
    run_dir: Path, state: dict[str, Any], launched: list[Component]
) -> Callable[..., None]:
    """Start components and record its pid in state.json at once: `down` must find it."""

    def launch(*batch: Component) -> None:
        for item in batch:
            item.start()
            launched.append(item)
            state["processes"].append(
                {"name": item.name, "pid": item.pid, "start_time": item.start_time}
            )
            write_state(run_dir, state)
            log(f"started {item.name} (pid {item.pid}), log {item.log_path}")

    return launch


def stop_launched(launched: list[Component]) -> None:
    stop_pids([(c.name, c.pid, c.start_time) for c in launched])
    for item in launched:
        if item.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                item.process.wait(timeout=1)


def up(
    run_dir: Path,
    skip_build: bool = False,
    real_node: bool = False,
    with_metrics: bool = False,
    with_keda: bool = False,
) -> Path:
    if with_metrics and not real_node:
        raise ClusterError("--metrics scrapes runtime pods, which need --real-node")
    if with_keda and not with_metrics:
        raise ClusterError("--keda scales on the queue gauge in Prometheus, which needs --metrics")
    if healthy(run_dir):
        state = read_state(run_dir) or {}
        if real_node and not state.get("real_node"):
            raise ClusterError(
                f"the cluster in {run_dir} runs without the real node: `down` it first"
            )
        if with_metrics and not state.get("metrics"):
            raise ClusterError(f"the cluster in {run_dir} runs without --metrics: `down` it first")
        if with_keda and not state.get("keda"):
            raise ClusterError(f"the cluster in {run_dir} runs without KEDA: run `keda-up`")
        log(f"already up: export KUBECONFIG={run_dir / 'kubeconfig'}")
        return run_dir / "kubeconfig"
    if run_dir.exists():
        log(f"{run_dir} holds a stopped or half-made cluster; cleaning it first")
        down(run_dir)
    started = time.monotonic()
    built = node_images() if real_node else {}
    if with_metrics and not skip_build:
        metrics.build()
    if with_keda and not skip_build:
        keda.build()
    if real_node:
        log(f"images ready after {time.monotonic() - started:.0f}s")
        if not skip_build:
            netpol.build()
        realnode.bridge_up()
    at, state = prepare(run_dir, skip_build, NODE_IP if real_node else "127.0.0.1")
    etcd, apiserver, controller_manager, scheduler, kwok = components(at)
    launched: list[Component] = []
    launch = launcher(run_dir, state, launched)
    try:
        launch(etcd)
        wait_healthy(etcd, at.ca)
        launch(apiserver)
        token = state["token"]
        wait_for(
            "kube-apiserver /readyz",
            lambda: probe(apiserver.health_url, at.ca, token),
            APISERVER_TIMEOUT_S,
            apiserver,
        )
        log(f"kube-apiserver ready after {time.monotonic() - started:.1f}s")
        launch(controller_manager, scheduler, kwok)
        for item in (controller_manager, scheduler, kwok):
            wait_healthy(item, at.ca)
        api = Api(at.server, token, at.ca)
        seed(api, kwok, controller_manager)
        lws.start(at, api, launch, state)
        if real_node:
            node = realnode.layout(run_dir, at.bin_dir)
            realnode.write_configs(node, built["pause"], at.ca, at.kubeconfig)
            state["real_node"] = {
                "socket": str(node.socket),
                "images": built,
                "ports": node.ports,
                "bridge_nf_call_iptables": netpol.bridge_filtering(),  # `down` puts it back
            }
            write_state(run_dir, state)
            realnode.start(node, built, api, at.kubeconfig, launch)
        if with_metrics:
            metrics.start(run_dir, api, at.bin_dir / "helm", launch, state)
        if with_keda:
            keda.start(run_dir, api, launch, state)
    except BaseException as error:
        # Stop what we started but keep the run dir: its logs say what went wrong.
        realnode.down(run_dir, state, at.bin_dir)
        stop_launched(launched)
        if isinstance(error, urllib.error.HTTPError):
            raise ClusterError(f"API call failed: {error} {error.read().decode()}") from error
        raise
    state["ready"] = True
    write_state(run_dir, state)
    (run_dir / "env").write_text(f"export KUBECONFIG={at.kubeconfig}\n")
    log(f"up in {time.monotonic() - started:.1f}s: export KUBECONFIG={at.kubeconfig}")
    return at.kubeconfig


def running(run_dir: Path, strict: bool = True) -> tuple[dict[str, Any], Api]:
    """The cluster's state and a client; ``strict``: every recorded process still runs."""
    state = read_state(run_dir) if not strict or healthy(run_dir) else None
    if not state or not state.get("ready"):
        raise ClusterError(f"no healthy cluster in {run_dir}: `up --real-node --metrics` first")
    return state, Api(state["server"], state["token"], Path(state["ca_file"]))


def keda_up(run_dir: Path, skip_build: bool = False) -> None:
    """KEDA added to a running cluster (the suite's KEDA tests; the other tests see a cluster
    without it, as a user's without KEDA)."""
    state, api = running(run_dir)
    if state.get("keda"):
        log("KEDA already runs in this cluster")
        return
    if not state.get("metrics"):
        raise ClusterError(f"the cluster in {run_dir} runs without --metrics: KEDA needs them")
    if not skip_build:
        keda.build()
    launched: list[Component] = []
    try:
        keda.start(run_dir, api, launcher(run_dir, state, launched), state)
    except BaseException:
        stop_launched(launched)
        forget(run_dir, state, launched)
        raise
    write_state(run_dir, state)


def keda_down(run_dir: Path) -> None:
    """keda_up undone: its objects (while its operator still clears its finalizers), then its
    processes; the rest of the cluster runs on. Also when one of KEDA's processes died."""
    state, api = running(run_dir, strict=False)
    part = state.get("keda")
    if not part:
        log("KEDA does not run in this cluster")
        return
    try:
        keda.remove(api, part)
    finally:
        mine = [p for p in state["processes"] if p["name"] in (keda.OPERATOR, keda.ADAPTER)]
        stop_pids([(p["name"], int(p["pid"]), str(p["start_time"])) for p in mine])
        state["processes"] = [p for p in state["processes"] if p not in mine]
        state.pop("keda", None)
        write_state(run_dir, state)
    log("KEDA removed")


def forget(run_dir: Path, state: dict[str, Any], launched: list[Component]) -> None:
    pids = {c.pid for c in launched}
    state["processes"] = [p for p in state["processes"] if p["pid"] not in pids]
    state.pop("keda", None)
    write_state(run_dir, state)
