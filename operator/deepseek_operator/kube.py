"""A small synchronous Kubernetes client: server-side apply, get, delete, status patch.

It speaks to REST paths directly (no discovery round-trips) for the handful of kinds the
operator owns, through the official client's authenticated connection pool. A missing object is
an answer, not a failure: ``get`` returns None and ``delete`` is idempotent; a kind the cluster
does not serve raises ``KindNotInstalled`` (except on delete: nothing to delete).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from deepseek_operator.api import API_VERSION, KIND

FIELD_MANAGER = "deepseek-operator"

# Every kind the operator applies, reads or owns, by apiVersion: it speaks REST paths without
# discovery round-trips, so it must know them. `plural` states how their paths name them.
KINDS: dict[str, tuple[str, ...]] = {
    "v1": ("ConfigMap", "Service", "ServiceAccount", "Pod", "Node", "Event"),
    "apps/v1": ("Deployment",),
    "leaderworkerset.x-k8s.io/v1": ("LeaderWorkerSet",),
    "policy/v1": ("PodDisruptionBudget",),
    "autoscaling/v2": ("HorizontalPodAutoscaler",),
    "networking.k8s.io/v1": ("NetworkPolicy",),
    "keda.sh/v1alpha1": ("ScaledObject",),
    "monitoring.coreos.com/v1": ("ServiceMonitor",),
    API_VERSION: (KIND,),
}


def plural(api_version: str, kind: str) -> str:
    """The resource name in the REST path: lower case, plural in English ("y" -> "ies"), as
    every kind in KINDS spells it; a kind not in KINDS is a KeyError (a bug, not a cluster's)."""
    if kind not in KINDS[api_version]:
        raise KeyError(f"{api_version} {kind}")
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


class KubeError(Exception):
    """The API server failed in a way worth retrying (5xx, timeouts, conflicts)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class KindNotInstalled(KubeError):
    """The API server does not serve this kind (its CRD, e.g. KEDA's, is not installed)."""


class NotFound(KubeError):
    """The object, or the namespace it would be written to, does not exist (or no longer)."""


def path(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path; a namespace of None means every namespace (lists only)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    resource = plural(api_version, kind)
    out = f"{base}/namespaces/{namespace}/{resource}" if namespace else f"{base}/{resource}"
    if name:
        out += f"/{name}"
    if subresource:
        out += f"/{subresource}"
    return out


@dataclass(frozen=True, slots=True)
class Listing:
    """What a list asks for: one kind in one namespace (None: every namespace), only the objects
    whose labels and fields match, in the API server's selector syntax (``app=x``, or ``key``
    for "has the label"; ``reason=FailedMount``); an empty selector selects all."""

    api_version: str
    kind: str
    namespace: str | None
    labels: str = ""
    fields: str = ""

    def query(self) -> dict[str, str]:
        selectors = {"labelSelector": self.labels, "fieldSelector": self.fields}
        return {key: value for key, value in selectors.items() if value}


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client

    def _call(
        self,
        method: str,
        url_path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        full = url_path + ("?" + urlencode(query) if query else "")
        params = self.api.param_serialize(
            method, full, header_params=headers, auth_settings=["BearerToken"]
        )
        # The REST client serialises dict bodies itself, for JSON and +yaml content types alike.
        try:
            response = self.api.call_api(
                params[0], params[1], header_params=params[2], body=body, _request_timeout=(5, 30)
            )
            response.read()
            status, data = response.status, response.data or b""
        except ApiException as exc:
            if not exc.status:  # no HTTP answer at all (the REST client's SSL and body errors)
                raise KubeError(0, str(exc.reason)) from exc
            status, data = exc.status, (exc.body or "").encode()
        except Exception as exc:  # urllib3 timeouts and connection errors
            raise KubeError(0, str(exc)) from exc
        if status == 404:
            missing = _not_found(data)
            if method == "DELETE" or (method == "GET" and isinstance(missing, NotFound)):
                return None
            raise missing
        if status >= 400:
            raise KubeError(status, _message(data))
        return json.loads(data) if data else {}

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply the whole object; we own every field we set."""
        meta = obj["metadata"]
        url = path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        result = self._call(
            "PATCH",
            url,
            obj,
            "application/apply-patch+yaml",
            {"fieldManager": FIELD_MANAGER, "force": "true"},
        )
        assert result is not None
        return result

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call("GET", path(api_version, kind, namespace, name))

    def list(self, listing: Listing) -> list[dict[str, Any]]:
        url = path(listing.api_version, listing.kind, listing.namespace)
        result = self._call("GET", url, query=listing.query())
        return list((result or {}).get("items") or [])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Idempotent: an object (or kind) that is not there is already deleted."""
        body = {"propagationPolicy": "Background"}
        self._call("DELETE", path(api_version, kind, namespace, name), body)

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``involved`` (what `kubectl describe` lists under Events)."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call("POST", path("v1", "Event", meta["namespace"]), event)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        found = self._call("GET", f"/api/v1/namespaces/{namespace}") or {}
        return dict((found.get("metadata") or {}).get("labels") or {})

    def version(self) -> str:
        info = self._call("GET", "/version") or {}
        return str(info.get("gitVersion", "unknown"))

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        url = path(API_VERSION, KIND, namespace, name, "status")
        try:
            self._call("PATCH", url, {"status": status}, "application/merge-patch+json")
        except NotFound:
            return  # the resource was deleted meanwhile


def _not_found(data: bytes) -> KubeError:
    """A 404 on a write: a Status naming the missing object's kind means the object (or its
    namespace) is missing; anything else (no details, or the mux's plain-text page) means the
    API server does not serve the resource type at all."""
    try:
        details = json.loads(data).get("details") or {}
    except (TypeError, ValueError, AttributeError):
        details = {}
    if details.get("kind"):
        return NotFound(404, _message(data))
    return KindNotInstalled(404, _message(data))


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message"))
    except (TypeError, ValueError, AttributeError):
        return data.decode(errors="replace")[:500]


_lock = threading.Lock()
_kube: Kube | None = None


def kube() -> Kube:
    """One client per process, configured in-cluster or from KUBECONFIG."""
    global _kube
    with _lock:
        if _kube is None:
            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(
                    config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
                )
            configuration.connection_pool_maxsize = 32
            _kube = Kube(client.ApiClient(configuration))
        return _kube
