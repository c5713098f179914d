"""kube.py against the real API server: a 404 on a write says which thing is missing."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from deepseek_operator.kube import KindNotInstalled, Kube, NotFound

pytestmark = pytest.mark.cluster


@pytest.fixture
def kube(cluster) -> Kube:  # type: ignore[no-untyped-def]
    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    return Kube(client.ApiClient(configuration))


def test_a_missing_namespace_is_not_a_missing_kind(kube: Kube) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "no-such-namespace-0f3a"},
    }
    with pytest.raises(NotFound, match="no-such-namespace-0f3a"):
        kube.apply(config_map)


def test_a_kind_without_its_crd_is_not_installed(kube: Kube, namespace: str) -> None:
    # The local control plane has no KEDA: its group is not served at all.
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "s", "namespace": namespace},
    }
    with pytest.raises(KindNotInstalled):
        kube.apply(scaled_object)


def test_status_of_a_missing_resource_is_dropped(
    kube: Kube, namespace: str, crd: dict[str, object]
) -> None:
    kube.patch_status(namespace, "never-created", {"phase": "Ready"})
