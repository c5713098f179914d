"""LeaderWorkerSet (sigs.k8s.io/lws) in the local cluster: its CRD, its controller manager as a
host process beside the control plane, and its admission webhooks reached on loopback.

The manager normally runs in a pod behind a Service and issues its own webhook certificate
(internalCertManagement). Here it is a host process, so that is off: its webhook server listens
on 127.0.0.1 with the cluster's serving certificate (signed by the cluster CA, valid for
127.0.0.1), and the webhook configurations name it by `clientConfig.url` with the cluster CA as
their caBundle. The webhooks are kept, not disabled: the pod webhook is what gives every pod of
a group its index labels and the LWS_* environment the runtime reads.
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit.ports import free_ports

from .api import Api, probe
from .config import COMPONENT_TIMEOUT_S, HACK, ClusterError
from .control_plane import Layout
from .processes import Component, wait_for

NAME = "lws-controller-manager"
CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
CRD_FILE = "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml"
FIELD_MANAGER = "localcluster"
# The module's config/webhook/manifests.yaml with its kustomize patches applied (the pod
# webhooks only see pods of a group): the paths are the ones its webhook server registers.
LWS_RULE = {
    "apiGroups": ["leaderworkerset.x-k8s.io"],
    "apiVersions": ["v1"],
    "operations": ["CREATE", "UPDATE"],
    "resources": ["leaderworkersets"],
}


def pod_rule(*operations: str) -> dict[str, Any]:
    return {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": list(operations),
        "resources": ["pods"],
    }


MUTATING = (
    ("mleaderworkerset.kb.io", "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset", LWS_RULE),
    ("mpod.kb.io", "/mutate--v1-pod", pod_rule("CREATE")),
)
VALIDATING = (
    ("vleaderworkerset.kb.io", "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset", LWS_RULE),
    ("vpod.kb.io", "/validate--v1-pod", pod_rule("CREATE", "UPDATE")),
)
# Only the pods of a group reach the pod webhooks (upstream's kustomize patch says the same).
GROUP_PODS = {
    "matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]
}
WEBHOOK_CONFIGS = ("lws-mutating-webhook-configuration", "lws-validating-webhook-configuration")


def pinned() -> tuple[str, Path]:
    """(LWS_VERSION, the cached binary) from hack/versions.env."""
    script = f'source "{HACK}/versions.env" && echo "$LWS_VERSION" && lws_bin'
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    version, bin_dir = out.stdout.split()
    return version, Path(bin_dir) / NAME


def crd_text(version: str, outside_modules: Path) -> str:
    """The CRD as the module ships it, from the Go module cache (the build downloaded it)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/lws@{version}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=outside_modules,  # no go.mod around changes the answer
    )
    return (Path(json.loads(out.stdout)["Dir"]) / CRD_FILE).read_text()


def apply_yaml(api: Api, path: str, text: str) -> None:
    """Server-side apply of a YAML document: the API server parses it, so no YAML library is
    needed here (this package runs before the venv)."""
    req = urllib.request.Request(
        f"{api.server}{path}?fieldManager={FIELD_MANAGER}&force=true",
        data=text.encode(),
        method="PATCH",
    )
    req.add_header("Authorization", f"Bearer {api.token}")
    req.add_header("Content-Type", "application/apply-patch+yaml")
    with urllib.request.urlopen(req, context=api.context(), timeout=60) as response:
        response.read()


def established(api: Api, name: str = CRD) -> bool:
    crd = api.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def manager_config(at: Layout, webhook_port: int, health_port: int) -> Path:
    """The manager's Configuration (config.lws.x-k8s.io/v1alpha1), decoded strictly by it."""
    home = at.run_dir / "lws"
    certs = home / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    # controller-runtime's webhook server reads tls.crt/tls.key from its certDir.
    shutil.copyfile(at.pki / "serving.crt", certs / "tls.crt")
    shutil.copyfile(at.pki / "serving.key", certs / "tls.key")
    (certs / "tls.key").chmod(0o600)
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},  # one manager; no Lease to hold
        "internalCertManagement": {"enable": False},  # certificates above, not its own
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(certs)},
        "metrics": {"bindAddress": "0"},  # off: its secure endpoint would need TokenReviews
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
    }
    path = home / "config.json"  # JSON is YAML: the manager reads it as its config file
    path.write_text(json.dumps(config, indent=2))
    return path


def component(at: Layout, binary: Path, config: Path, health_port: int) -> Component:
    return Component(
        NAME,
        [str(binary), f"--kubeconfig={at.kubeconfig}", f"--config={config}"],
        f"http://127.0.0.1:{health_port}/healthz",
        at.run_dir / f"{NAME}.log",
    )


def webhook_serving(port: int, ca: Path) -> bool:
    """The webhook server answers TLS on loopback with a certificate the cluster CA signed
    (any HTTP status will do: only the registered paths answer 200 to an AdmissionReview)."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


def webhook_configuration(kind: str, name: str, port: int, ca_pem: str) -> dict[str, Any]:
    hooks = MUTATING if kind == "MutatingWebhookConfiguration" else VALIDATING
    bundle = base64.b64encode(ca_pem.encode()).decode()
    webhooks = []
    for hook, path, rule in hooks:
        entry: dict[str, Any] = {
            "name": hook,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [rule],
        }
        if rule["resources"] == ["pods"]:
            entry["objectSelector"] = GROUP_PODS
        webhooks.append(entry)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": webhooks,
    }


def start(
    at: Layout,
    api: Api,
    launch: Callable[[Component], None],
    state: dict[str, Any],
) -> None:
    """CRD, manager, then the webhook configurations: registered only once the webhook server
    answers, since with failurePolicy Fail they would otherwise refuse every group's pods."""
    version, binary = pinned()
    if not binary.exists():
        raise ClusterError(f"{binary} is missing: run hack/build-lws.sh")
    apply_yaml(
        api,
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}",
        crd_text(version, binary.parent),
    )
    wait_for("the LeaderWorkerSet CRD Established", lambda: established(api), 60, None)
    webhook_port, health_port = free_ports(2)
    state["lws"] = {"version": version, "webhook_port": webhook_port, "health_port": health_port}
    manager = component(at, binary, manager_config(at, webhook_port, health_port), health_port)
    launch(manager)
    wait_for(
        f"{NAME} /healthz",
        lambda: probe(manager.health_url, None),
        COMPONENT_TIMEOUT_S,
        manager,
    )
    wait_for(
        f"{NAME} webhooks on 127.0.0.1:{webhook_port}",
        lambda: webhook_serving(webhook_port, at.ca),
        COMPONENT_TIMEOUT_S,
        manager,
    )
    ca_pem = at.ca.read_text()
    for kind, name in zip(
        ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"),
        WEBHOOK_CONFIGS,
        strict=True,
    ):
        plural = kind.lower() + "s"
        body = webhook_configuration(kind, name, webhook_port, ca_pem)
        apply_yaml(api, f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}", json.dumps(body))
