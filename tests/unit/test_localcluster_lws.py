"""hack/localcluster/lws.py without a cluster: the LWS manager's configuration and the webhook
configurations that send the API server to it on loopback (the cluster suite runs them)."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

from localcluster import lws
from localcluster.control_plane import Layout
from localcluster.pki import write_certificates


def layout(tmp_path: Path) -> Layout:
    write_certificates(tmp_path / "pki")
    return Layout(tmp_path, tmp_path / "bin", tmp_path / "stages.yaml", {"kube-apiserver": 1})


def test_the_version_and_binary_are_pinned_in_versions_env() -> None:
    version, binary = lws.pinned()
    assert version.startswith("v0.")
    assert binary.name == "lws-controller-manager"
    assert f"lws-{version}" in binary.parts[-3]


def test_the_manager_serves_its_webhooks_on_loopback_with_the_clusters_certificate(
    tmp_path: Path,
) -> None:
    at = layout(tmp_path)
    config = json.loads(lws.manager_config(at, 9443, 8081).read_text())
    assert config["apiVersion"] == "config.lws.x-k8s.io/v1alpha1"
    assert config["kind"] == "Configuration"
    assert config["webhook"]["host"] == "127.0.0.1" and config["webhook"]["port"] == 9443
    assert config["internalCertManagement"] == {"enable": False}
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:8081"
    certs = Path(config["webhook"]["certDir"])
    # The certificate the webhook server shows is one the cluster CA vouches for at 127.0.0.1.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certs / "tls.crt", certs / "tls.key")
    assert (certs / "tls.crt").read_bytes() == (at.pki / "serving.crt").read_bytes()
    assert (certs / "tls.key").stat().st_mode & 0o077 == 0


def test_webhook_configurations_point_at_loopback_with_the_cluster_ca(tmp_path: Path) -> None:
    at = layout(tmp_path)
    ca = at.ca.read_text()
    mutating = lws.webhook_configuration("MutatingWebhookConfiguration", "m", 9443, ca)
    validating = lws.webhook_configuration("ValidatingWebhookConfiguration", "v", 9443, ca)
    hooks = {h["name"]: h for h in mutating["webhooks"] + validating["webhooks"]}
    assert set(hooks) == {
        "mleaderworkerset.kb.io",
        "mpod.kb.io",
        "vleaderworkerset.kb.io",
        "vpod.kb.io",
    }
    for hook in hooks.values():
        client = hook["clientConfig"]
        assert client["url"].startswith("https://127.0.0.1:9443/")
        assert base64.b64decode(client["caBundle"]).decode() == ca
        assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hooks["mpod.kb.io"]["clientConfig"]["url"].endswith("/mutate--v1-pod")
    assert hooks["mpod.kb.io"]["rules"][0]["operations"] == ["CREATE"]
    assert hooks["vpod.kb.io"]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    # Only the pods of a group go through the LWS pod webhooks; every other pod never does.
    for name in ("mpod.kb.io", "vpod.kb.io"):
        (expression,) = hooks[name]["objectSelector"]["matchExpressions"]
        assert expression == {"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}
    for name in ("mleaderworkerset.kb.io", "vleaderworkerset.kb.io"):
        assert "objectSelector" not in hooks[name]
        assert hooks[name]["rules"][0]["resources"] == ["leaderworkersets"]
