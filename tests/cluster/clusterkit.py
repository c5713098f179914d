"""Helpers for the cluster suite: real kubectl and helm, the operator as a local process, and
patient polling. Fixtures live in conftest.py; this module holds what tests import directly."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from devkit.merge import merge_patch
from devkit.ports import free_port

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
VENV_BIN = REPO / ".venv" / "bin"
GROUP, VERSION = "deepseek.ai", "v1alpha1"
KIND, PLURAL = "DeepSeekDeployment", "deepseekdeployments"
LABEL_INSTANCE = "app.kubernetes.io/instance"
CONFIG_HASH = "deepseek.ai/config-hash"

# Every child of a DeepSeekDeployment NAME: (kubectl resource, object name given NAME).
CHILDREN: dict[str, Callable[[str], str]] = {
    "deployments.apps": lambda name: name,
    "services": lambda name: name,
    "horizontalpodautoscalers.autoscaling": lambda name: name,
    "poddisruptionbudgets.policy": lambda name: name,
    "networkpolicies.networking.k8s.io": lambda name: name,
    "serviceaccounts": lambda name: name,
    "configmaps": lambda name: f"{name}-runtime",
}
CHILDREN_WITHOUT_HPA = {k: v for k, v in CHILDREN.items() if not k.startswith("horizontal")}

T = TypeVar("T")
READY_TIMEOUT = 60.0
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def versions() -> dict[str, str]:
    script = (
        f'source "{HACK}/versions.env" && printf "%s\\n" "K8S_VERSION=$K8S_VERSION" '
        '"BIN=$(control_plane_bin)" "LWS_VERSION=$LWS_VERSION"'
    )
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def localcluster_cli(*args: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    """`python3 -m localcluster ARGS --dir RUN_DIR` (hack/localcluster), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "localcluster", *args, "--dir", str(run_dir)],
        cwd=HACK,
        capture_output=True,
        text=True,
        check=False,
    )


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """Polls until `check` returns something truthy; on timeout says what it last saw."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (subprocess.CalledProcessError, KeyError, IndexError, TypeError) as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            extra = f"\n{describe()}" if describe else ""
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}{extra}"
            )
        time.sleep(interval)


def dsd(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid DeepSeekDeployment: the 7B distill in int8 on one A100 (the fake node 2), fixed
    replicas, weights in the image so no PVC is needed. `spec` is merged over it."""
    base = {
        "model": {
            "name": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
            "source": {"image": {"path": "/models/r1-distill-qwen-7b"}},
        },
        "quantization": "int8",
        "resources": {"gpu": {"count": "auto", "product": "NVIDIA-A100-SXM4-80GB"}},
        "replicas": 1,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": merge_patch(base, spec or {}),
    }


@dataclass
class Kubectl:
    """The real kubectl binary with the cluster's kubeconfig."""

    binary: Path
    kubeconfig: Path
    namespace: str | None = None

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            command.append(f"--namespace={self.namespace}")
        result = subprocess.run(
            [*command, *args], input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def ns(self, namespace: str) -> Kubectl:
        return Kubectl(self.binary, self.kubeconfig, namespace)

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        result = self("get", resource, name, "-o", "json", "--ignore-not-found", check=False)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, "", result.stderr)
        return json.loads(result.stdout) if result.stdout.strip() else None

    def items(self, resource: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = [resource] + ([f"--selector={selector}"] if selector else [])
        items: list[dict[str, Any]] = self.json(*args)["items"]
        return items

    def apply(
        self, *objects: dict[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = yaml.safe_dump_all(objects)
        return self("apply", "-f", "-", input=text, check=check)


@dataclass
class Helm:
    binary: Path
    kubeconfig: Path

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result


@dataclass
class OperatorProcess:
    """`deepseek-operator run` from the working tree, as a subprocess with its own log."""

    kubeconfig: Path
    log_path: Path
    namespaces: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: int = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> None:
        binary = VENV_BIN / "deepseek-operator"
        if not binary.exists():
            raise AssertionError(f"{binary} is missing: run make install")
        self.port = free_port()
        args = [str(binary), "run", f"--liveness=http://127.0.0.1:{self.port}/healthz"]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.extra_env}
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        wait_until(self._healthy, timeout, "the operator's /healthz", describe=self.tail)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}:\n{self.tail()}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, exactly like an OOM kill or a lost node."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, grace: float = 10) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no operator log)"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def children_of(
    kubectl: Kubectl, name: str, kinds: Iterable[str]
) -> dict[str, dict[str, Any] | None]:
    return {kind: kubectl.get(kind, CHILDREN[kind](name)) for kind in kinds}


def load_example(path: Path) -> list[dict[str, Any]]:
    """The example's documents, namespace dropped so a test can apply them into its own."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        doc.get("metadata", {}).pop("namespace", None)
    return docs


def make_namespace(kubectl: Kubectl, prefix: str) -> str:
    name = f"{prefix[:40].rstrip('-')}-{secrets.token_hex(3)}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**RESTRICTED, "deepseek.ai/test": "cluster"}},
    }
    kubectl.apply(manifest)
    # The ServiceAccount admission plugin refuses pods until the default SA exists.
    wait_until(lambda: kubectl.ns(name).get("serviceaccount", "default"), 30, "default SA")
    return name


def release_namespace(kubectl: Kubectl, namespace: str) -> None:
    """Deletes a test namespace. The operator puts no finalizer on its CRs, so this works even
    after the test's operator has stopped (test_kopf_runner proves it)."""
    kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def wait_ready(ns: Kubectl, name: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        cr = ns.get("dsd", name)
        if not cr:
            return None
        status = cr.get("status", {})
        fresh = status.get("observedGeneration") == cr["metadata"]["generation"]
        return cr if fresh and status.get("phase") == "Ready" else None

    return wait_until(ready, timeout, f"dsd/{name} Ready", describe=lambda: describe(ns, name))


def apply_ready(ns: Kubectl, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """Applies ``dsd(name, spec)`` and waits until the operator reports it Ready."""
    ns.apply(dsd(name, spec))
    return wait_ready(ns, name)


def describe(ns: Kubectl, name: str) -> str:
    out = ns("get", f"dsd/{name}", "-o", "yaml", check=False).stdout
    out += ns("get", "deploy,rs,pods,events", "-o", "wide", check=False).stdout
    return out


def child_kinds(spec: dict[str, Any]) -> dict[str, Any]:
    mode = (spec.get("autoscaling") or {}).get("mode", "hpa") if spec.get("autoscaling") else None
    return CHILDREN if mode == "hpa" else CHILDREN_WITHOUT_HPA


def wait_children(ns: Kubectl, name: str, kinds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def present() -> dict[str, dict[str, Any]] | None:
        found = {kind: ns.get(kind, kinds[kind](name)) for kind in kinds}
        return found if all(found.values()) else None  # type: ignore[return-value]

    return wait_until(
        present, READY_TIMEOUT, f"children of {name}", describe=lambda: describe(ns, name)
    )


def pods_of(ns: Kubectl, name: str) -> list[dict[str, Any]]:
    return ns.items("pods", f"app.kubernetes.io/instance={name}")
