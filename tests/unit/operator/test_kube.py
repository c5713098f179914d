"""How kube.py reads the API server's answers, with bodies recorded from a real kube-apiserver
(v1.36): a 404 on a write means either a missing object or namespace, or a kind the cluster does
not serve, and the two need different handling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from deepseek_operator.api import API_VERSION, KIND, PLURAL
from deepseek_operator.kube import KindNotInstalled, Kube, KubeError, Listing, NotFound, path

NAMESPACE_MISSING = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
    b'"namespaces \\"gone\\" not found","reason":"NotFound","details":{"name":"gone",'
    b'"kind":"namespaces"},"code":404}\n'
)
CR_MISSING = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
    b'"deepseekdeployments.deepseek.ai \\"r1\\" not found","reason":"NotFound","details":'
    b'{"name":"r1","group":"deepseek.ai","kind":"deepseekdeployments"},"code":404}\n'
)
GROUP_NOT_SERVED = b"404 page not found\n"
RESOURCE_NOT_SERVED = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
    b'"the server could not find the requested resource","reason":"NotFound","details":{},'
    b'"code":404}\n'
)
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "s", "namespace": "n"},
}


@dataclass
class Answer:
    """What the REST client's call_api returns for a 2xx."""

    status: int
    data: bytes

    def read(self) -> None:
        return None


@dataclass
class ApiClient:
    """Stands in for kubernetes.client.ApiClient: answers each call with the next outcome."""

    outcomes: list[Answer | Exception]
    calls: list[tuple[str, str]] = field(default_factory=list)

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[str, str, dict, None]:
        return method, path, {}, None

    def call_api(self, method: str, url: str, **_: Any) -> Answer:
        self.calls.append((method, url))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def http_error(status: int, body: bytes) -> ApiException:
    return ApiException(status=status, reason="Not Found", body=body.decode())


def kube(*outcomes: Answer | Exception) -> Kube:
    return Kube(ApiClient(list(outcomes)))  # type: ignore[arg-type]


def test_apply_into_a_missing_namespace_is_not_found_not_a_missing_kind() -> None:
    with pytest.raises(NotFound) as info:
        kube(http_error(404, NAMESPACE_MISSING)).apply(CONFIG_MAP)
    assert not isinstance(info.value, KindNotInstalled)
    assert 'namespaces "gone" not found' in str(info.value)


@pytest.mark.parametrize("body", [GROUP_NOT_SERVED, RESOURCE_NOT_SERVED], ids=["group", "type"])
def test_apply_of_a_kind_the_cluster_does_not_serve(body: bytes) -> None:
    with pytest.raises(KindNotInstalled):
        kube(http_error(404, body)).apply(SCALED_OBJECT)


def test_status_of_a_deleted_resource_is_dropped_quietly() -> None:
    client = kube(http_error(404, CR_MISSING))
    client.patch_status("n", "r1", {"phase": "Ready"})  # no exception: the CR is gone


def test_no_http_answer_is_a_retryable_error() -> None:
    # The REST client raises ApiException(status=0) for SSL errors: no response to read.
    with pytest.raises(KubeError) as info:
        kube(ApiException(status=0, reason="SSLError: certificate verify failed")).apply(CONFIG_MAP)
    assert info.value.status == 0 and "certificate verify failed" in str(info.value)


def test_a_missing_object_is_an_answer_a_missing_kind_is_not() -> None:
    client = kube(
        http_error(404, CR_MISSING), http_error(404, GROUP_NOT_SERVED), http_error(404, CR_MISSING)
    )
    assert client.get("v1", "ConfigMap", "n", "c") is None
    with pytest.raises(KindNotInstalled):
        client.get("keda.sh/v1alpha1", "ScaledObject", "n", "s")
    client.delete("v1", "ConfigMap", "n", "c")


def test_deleting_what_the_cluster_does_not_serve_is_done() -> None:
    kube(http_error(404, GROUP_NOT_SERVED)).delete("keda.sh/v1alpha1", "ScaledObject", "n", "s")


def test_apply_returns_the_object_the_server_answered() -> None:
    applied = kube(Answer(200, b'{"kind": "ConfigMap", "metadata": {"uid": "u"}}')).apply(
        CONFIG_MAP
    )
    assert applied["metadata"]["uid"] == "u"


def test_a_list_sends_its_selectors_and_returns_the_items() -> None:
    client = kube(Answer(200, b'{"kind": "EventList", "items": [{"reason": "FailedMount"}]}'))
    listing = Listing("v1", "Event", "n", labels="app=r1", fields="reason=FailedMount")
    assert client.list(listing) == [{"reason": "FailedMount"}]
    assert client.api.calls == [  # type: ignore[attr-defined]
        (
            "GET",
            "/api/v1/namespaces/n/events?labelSelector=app%3Dr1&fieldSelector=reason%3DFailedMount",
        )
    ]


def test_a_list_without_selectors_or_namespace_asks_for_everything() -> None:
    client = kube(Answer(200, b'{"kind": "NodeList", "items": null}'))
    assert client.list(Listing("v1", "Node", None)) == []
    assert client.api.calls == [("GET", "/api/v1/nodes")]  # type: ignore[attr-defined]


# The resource names kube-apiserver v1.36 serves these kinds under (`kubectl api-resources`), and
# the CRD's own plural: paths are built without discovery, so a wrong one is a 404 in a cluster.
SERVED_AS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Event"): "events",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (API_VERSION, KIND): PLURAL,
}


@pytest.mark.parametrize(("api_version", "kind"), list(SERVED_AS))
def test_paths_name_each_kind_as_the_api_server_serves_it(api_version: str, kind: str) -> None:
    assert path(api_version, kind, "n", "x").endswith(
        f"/namespaces/n/{SERVED_AS[api_version, kind]}/x"
    )


def test_a_kind_the_operator_does_not_own_has_no_path() -> None:
    with pytest.raises(KeyError):
        path("v1", "Secret", "n", "x")
