"""Certificates: a CA, one serving certificate for every component, a service-account key."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

from .config import NODE_IP, SERVICE_CIDR

# x509.KeyUsage takes every usage by name; a certificate here has these on and the rest off.
KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only",
              "decipher_only")  # fmt: skip
CA_USAGES = {"digital_signature", "key_cert_sign", "crl_sign"}
LEAF_USAGES = {"digital_signature", "key_encipherment"}


def write_certificates(pki: Path) -> None:
    """A CA, one serving certificate for every component and a service-account key pair.

    SKI/AKI and critical basicConstraints/keyUsage are set so Python's strict X.509
    verification (the default from 3.13) accepts the chain, not only Go's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=30)

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deepseek-local-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())

    def certificate(subject: x509.Name, key: Any, *, ca: bool) -> Any:
        """What every certificate here carries: issued by the CA, for 30 days, with critical
        basicConstraints and keyUsage and with SKI/AKI (see the docstring above)."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(**{u: u in (CA_USAGES if ca else LEAF_USAGES) for u in KEY_USAGES}),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )

    ca_cert = certificate(ca_name, ca_key, ca=True).sign(ca_key, hashes.SHA256())

    def leaf(cn: str, usage: Any, names: list[x509.GeneralName]) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = certificate(subject, key, ca=False).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    service_ip = ipaddress.IPv4Network(SERVICE_CIDR)[1]  # kubernetes.default's IP
    names: list[x509.GeneralName] = [
        x509.DNSName(name)
        for name in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    # The bridge address: the real node's pods reach the API server there (through the
    # kubernetes Service) and the API server listens there when a real node runs.
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip, NODE_IP)]
    serving_key, serving_cert = leaf("kube-apiserver", ExtendedKeyUsageOID.SERVER_AUTH, names)
    # What the API server shows the kubelet (logs, exec, port-forward): the kubelet trusts
    # this CA's client certificates and nothing anonymous.
    client_key, client_cert = leaf(
        "kube-apiserver-kubelet-client", ExtendedKeyUsageOID.CLIENT_AUTH, []
    )
    # The aggregation layer: the API server proxies custom.metrics.k8s.io to prometheus-adapter
    # with this client certificate, which the adapter trusts for the X-Remote-User headers.
    proxy_key, proxy_cert = leaf("front-proxy-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])

    # RSA: every Kubernetes version signs and verifies service-account tokens with it.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(pem_key(ca_key))
    (pki / "serving.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "serving.key").write_bytes(pem_key(serving_key))
    (pki / "kubelet-client.crt").write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "kubelet-client.key").write_bytes(pem_key(client_key))
    (pki / "front-proxy-client.crt").write_bytes(
        proxy_cert.public_bytes(serialization.Encoding.PEM)
    )
    (pki / "front-proxy-client.key").write_bytes(pem_key(proxy_key))
    (pki / "sa.key").write_bytes(pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key in ("ca.key", "serving.key", "kubelet-client.key", "front-proxy-client.key", "sa.key"):
        (pki / key).chmod(0o600)
