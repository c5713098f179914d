"""API keys and TLS on a real pod: the keys come from a Secret (401 without a key, an answer
with one), the certificate from a `kubernetes.io/tls` Secret (the endpoint and the kubelet's
probes are HTTPS; the official `openai` client trusts the test CA). The certificate Secret is
created only once the Service has its cluster IP, so until then the pod waits on a volume that
cannot mount, and the DeepSeekDeployment says so."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from clusterkit import Kubectl, condition, wait_until
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from realnode import (
    RealOperator,
    Served,
    capital_of_france,
    describe_pods,
    smollm2_objects,
    wait_serving,
)

pytestmark = pytest.mark.timeout(1200)
NAME = "guarded"


def certificate(ip: str, dns: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, serving certificate, serving key) as PEM, the serving one for `ip`."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "real-node test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName(dns)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def secret(name: str, data: dict[str, str], type_: str = "Opaque") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": type_,
        "stringData": data,
    }


def test_keys_and_tls_guard_the_real_endpoint(
    kubectl: Kubectl, real_operator: RealOperator, smollm2: Served, tmp_path: Path
) -> None:
    ns = kubectl.ns(real_operator.watched)
    key = secrets.token_urlsafe(24)
    digest = hashlib.sha256(key.encode()).hexdigest()
    keys = yaml.safe_dump([{"name": "tests", "role": "inference", "sha256": digest}])
    cr = smollm2_objects(NAME, smollm2.cr["spec"]["runtime"]["image"], "")[1]
    del cr["spec"]["model"]["integrity"]
    cr["spec"]["security"] = {
        "apiKeys": {"secretName": f"{NAME}-keys"},
        "tls": {"secretName": f"{NAME}-tls"},
    }
    ns.apply(secret(f"{NAME}-keys", {"api-keys.yaml": keys}), cr)
    try:
        # No certificate yet: the status names the missing Secret instead of "0/1 ready".
        def waiting_on_tls() -> str | None:
            ready = condition(ns.get("dsd", NAME) or {}, "Ready") or {}
            said = str(ready.get("message", ""))
            named = ready.get("reason") == "FailedMount" and f'"{NAME}-tls" not found' in said
            return said if named else None

        wait_until(
            waiting_on_tls, 180, f"the status to name Secret {NAME}-tls", interval=2,
            describe=lambda: str(ns.get("dsd", NAME)) + describe_pods(ns),
        )  # fmt: skip
        ip = wait_until(
            lambda: ((ns.get("service", NAME) or {}).get("spec") or {}).get("clusterIP"),
            60,
            "the Service's cluster IP",
        )
        ca, cert, private = certificate(ip, f"{NAME}.{real_operator.watched}.svc")
        tls = {"tls.crt": cert.decode(), "tls.key": private.decode()}
        ns.apply(secret(f"{NAME}-tls", tls, "kubernetes.io/tls"))
        served = wait_serving(ns, NAME)  # the kubelet's HTTPS probes pass
        (tmp_path / "ca.crt").write_bytes(ca)
        http = httpx.Client(verify=str(tmp_path / "ca.crt"), timeout=120)
        base = f"https://{served.cluster_ip}:8080/v1"

        stranger = openai.OpenAI(base_url=base, api_key="not-a-key", http_client=http)
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()
        client = openai.OpenAI(base_url=base, api_key=key, http_client=http)
        assert "Paris" in capital_of_france(client)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"https://{served.cluster_ip}:8080/health", timeout=10)
    finally:
        ns("delete", "dsd", NAME, "--wait=false", check=False)
