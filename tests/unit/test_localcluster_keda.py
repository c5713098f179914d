"""hack/localcluster/keda_trim.py and keda.py without a cluster: the trim of KEDA's scaler
registry (on the shape of v2.21's pkg/scaling/scalers_builder.go), its refusal of a shape it does
not know, and the processes' flags and certificates (the cluster suite runs them)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from localcluster import keda, keda_trim
from localcluster.config import ClusterError
from localcluster.pki import write_certificates

# An excerpt of v2.21.0's buildScaler, comments and odd cases included (its signature shortened).
BUILDER = """package scaling

// buildScaler builds a scaler form input config and trigger type
func buildScaler(ctx context.Context, triggerType string) (scalers.Scaler, error) {
\t// TRIGGERS-START
\tswitch triggerType {
\tcase "activemq":
\t\treturn scalers.NewActiveMQScaler(config)
\tcase "cpu":
\t\treturn scalers.NewCPUMemoryScaler(corev1.ResourceCPU, config)
\t// TODO: use other way for test.
\tcase "external-mock":
\t\treturn scalers.NewExternalMockScaler(config)
\tcase "memory":
\t\treturn scalers.NewCPUMemoryScaler(corev1.ResourceMemory, config)
\tcase "prometheus":
\t\treturn scalers.NewPrometheusScaler(config)
\tcase "redis", "redis-cluster":
\t\tcluster := triggerType == "redis-cluster"
\t\treturn scalers.NewRedisScaler(ctx, cluster, false, config)
\tdefault:
\t\treturn nil, fmt.Errorf("no scaler found for type: %s", triggerType)
\t}
\t// TRIGGERS-END
}
"""


# Where v2.21 defines a constant the Prometheus scaler uses.
AZURE_QUEUE = """package scalers

const (
\texternalMetricType             = "External"
\tqueueLengthStrategyVisibleOnly = "visibleonly"
)
"""


def test_the_registry_keeps_only_the_asked_cases_and_the_default() -> None:
    out = keda_trim.trim_registry(BUILDER, {"prometheus", "cpu", "memory"})
    assert 'case "prometheus":\n\t\treturn scalers.NewPrometheusScaler(config)' in out
    assert "NewCPUMemoryScaler(corev1.ResourceCPU" in out
    assert "NewCPUMemoryScaler(corev1.ResourceMemory" in out
    for gone in ("activemq", "external-mock", "TODO", "NewRedisScaler", "cluster :="):
        assert gone not in out, gone
    assert 'return nil, fmt.Errorf("no scaler found for type: %s", triggerType)' in out
    # Everything outside the switch is as it was.
    assert out.startswith(BUILDER.split("\t// TRIGGERS-START")[0])
    assert out.endswith("\t// TRIGGERS-END\n}\n")


def test_a_registry_of_another_shape_is_refused_naming_what_was_expected() -> None:
    with pytest.raises(keda_trim.TrimError, match="TRIGGERS-START"):
        keda_trim.trim_registry(BUILDER.replace("// TRIGGERS-START", "// SCALERS"), {"cpu"})
    with pytest.raises(keda_trim.TrimError, match="no case for trigger type"):
        keda_trim.trim_registry(BUILDER.replace('"prometheus"', '"prom"'), {"prometheus"})
    with pytest.raises(keda_trim.TrimError, match="unexpected line"):
        keda_trim.trim_registry(BUILDER.replace('\tcase "activemq":\n', ""), {"cpu"})


def test_trim_deletes_the_other_scalers_and_their_tests(tmp_path: Path) -> None:
    scalers = tmp_path / "pkg" / "scalers"
    (scalers / "aws").mkdir(parents=True)
    (tmp_path / "pkg" / "scaling").mkdir()
    (tmp_path / "pkg" / "scaling" / "scalers_builder.go").write_text(BUILDER)
    names = [
        *("scaler.go", "prometheus_scaler.go", "prometheus_scaler_test.go"),
        *("cpu_memory_scaler.go", "redis_scaler.go", "external_mock_scaler.go", "README.md"),
    ]
    for name in names:
        (scalers / name).write_text("package scalers\n")
    (scalers / "azure_queue_scaler.go").write_text(AZURE_QUEUE)
    deleted = keda_trim.trim(tmp_path)
    left = sorted(p.name for p in scalers.iterdir())
    assert left == [
        *("README.md", "aws", "cpu_memory_scaler.go", "prometheus_scaler.go", "scaler.go"),
        "trimmed_constants.go",
    ]
    carried = (scalers / "trimmed_constants.go").read_text()
    assert 'package scalers\n\nconst externalMetricType = "External"\n' in carried
    assert "redis_scaler.go" in deleted and "prometheus_scaler_test.go" in deleted
    assert "NewRedisScaler" not in (tmp_path / "pkg/scaling/scalers_builder.go").read_text()


def test_a_carried_constant_found_nowhere_or_twice_is_an_error() -> None:
    with pytest.raises(keda_trim.TrimError, match=r"externalMetricType.*none"):
        keda_trim.carried_constants({"a.go": "package scalers\n"}, ("externalMetricType",))
    twice = {"a.go": AZURE_QUEUE, "b.go": AZURE_QUEUE.replace('"External"', '"Pods"')}
    with pytest.raises(keda_trim.TrimError, match=r"External.*Pods"):
        keda_trim.carried_constants(twice, ("externalMetricType",))


def test_trim_refuses_a_module_without_the_kept_scaler(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "scalers").mkdir(parents=True)
    (tmp_path / "pkg" / "scaling").mkdir()
    (tmp_path / "pkg" / "scaling" / "scalers_builder.go").write_text(BUILDER)
    (tmp_path / "pkg" / "scalers" / "scaler.go").write_text("package scalers\n")
    with pytest.raises(keda_trim.TrimError, match=r"prometheus_scaler\.go"):
        keda_trim.trim(tmp_path)
    assert keda_trim.main([str(tmp_path / "elsewhere")]) == 1


def test_crd_names_come_from_kedas_file_names() -> None:
    assert keda.crd_name(Path("keda.sh_scaledobjects.yaml")) == "scaledobjects.keda.sh"
    assert (
        keda.crd_name(Path("eventing.keda.sh_cloudeventsources.yaml"))
        == "cloudeventsources.eventing.keda.sh"
    )
    with pytest.raises(ClusterError, match="GROUP_PLURAL"):
        keda.crd_name(Path("scaledobjects.yaml"))


def test_the_processes_share_one_certificate_for_the_aggregator_and_their_mutual_tls(
    tmp_path: Path,
) -> None:
    write_certificates(tmp_path / "pki")
    operator, adapter, ports = keda.components(tmp_path, tmp_path / "bin", tmp_path / "kc")
    certs = tmp_path / "keda" / "certs"
    assert sorted(p.name for p in certs.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    cert = x509.load_pem_x509_certificate((certs / "tls.crt").read_bytes())
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "keda-metrics-apiserver.keda.svc" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "10.244.0.1",
        "127.0.0.1",
    }
    ssl.create_default_context(cafile=str(certs / "ca.crt")).load_cert_chain(
        certs / "tls.crt", certs / "tls.key"
    )  # the pair matches, and the CA is the cluster's
    grpc = f"127.0.0.1:{ports[keda.OPERATOR]}"
    assert f"--metrics-service-bind-address={grpc}" in operator.argv
    assert f"--metrics-service-address={grpc}" in adapter.argv
    assert f"--cert-dir={certs}" in operator.argv and f"--cert-dir={certs}" in adapter.argv
    for item in (operator, adapter):
        assert item.env["WATCH_NAMESPACE"] == "" and item.env["KUBECONFIG"] == str(tmp_path / "kc")
    assert adapter.health_url == f"https://10.244.0.1:{ports[keda.ADAPTER]}/healthz"
