"""prometheus-adapter's serving certificate, signed by the cluster's CA: the APIService carries
that CA as its caBundle, so the aggregator verifies the adapter instead of skipping TLS checks."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path


def write_adapter_certificate(
    pki: Path, out: Path, dns_name: str, *ips: str, client: bool = False, stem: str = "adapter"
) -> tuple[Path, Path]:
    """A server certificate for ``dns_name`` (the Service name the aggregator checks) and
    ``ips`` (where the adapter listens), also good for client auth when ``client`` (KEDA's
    operator and metrics server use one pair both ways, for their mutual TLS); returns
    (certificate, key) paths, ``out/STEM.crt`` and ``out/STEM.key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey), "pki.py makes an EC CA"
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    names: list[x509.GeneralName] = [x509.DNSName(dns_name)]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = out / f"{stem}.crt", out / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
