"""An in-memory API server for the reconcile layer's unit tests: the Kube methods the operator
calls, with the semantics that matter here (server-side apply replaces what we own, JSON merge
patch of status, generation bumps on spec changes, lists by label and field selector, 404s as
kube.py reports them, kinds the cluster does not serve). The real API server's behaviour is
covered by tests/cluster."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devkit.merge import merge_patch

from deepseek_operator.kube import KindNotInstalled, Listing, NotFound

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


@dataclass
class FakeKube:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    unserved: set[str] = field(default_factory=set)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Called before every method with (method, kind); raise from it to inject a failure.
    before: Callable[[str, str], None] | None = None
    _uids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- what the tests set up and read ---------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object as a user (kubectl apply) would."""
        obj = copy.deepcopy(obj)
        key = self._key(obj)
        meta = obj.setdefault("metadata", {})
        old = self.objects.get(key)
        meta.setdefault(
            "uid", (old or {}).get("metadata", {}).get("uid") or f"uid-{next(self._uids)}"
        )
        generation = (old or {}).get("metadata", {}).get("generation", 0)
        if old is None or old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation
        if old is not None and "status" in old and "status" not in obj:
            obj["status"] = old["status"]
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        for (_, k, ns, n), obj in self.objects.items():
            if (k, ns, n) == (kind, namespace, name):
                return obj
        return None

    def kinds(self, namespace: str) -> list[str]:
        return sorted(k for (_, k, ns, _), _ in self.objects.items() if ns == namespace)

    # --- deepseek_operator.kube.Kube ----------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._enter("apply", obj["kind"], obj["metadata"]["name"])
        key = self._key(obj)
        old = self.objects.get(key)
        desired = copy.deepcopy(obj)
        if old is not None and "status" in old:
            desired["status"] = old["status"]
        return self.put(desired)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._enter("get", kind, name)
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, listing: Listing) -> list[dict[str, Any]]:
        self._enter("list", listing.kind, listing.labels)
        out = []
        for (av, k, ns, _), obj in sorted(self.objects.items()):
            if (av, k) != (listing.api_version, listing.kind):
                continue
            if listing.namespace and ns != listing.namespace:
                continue
            labels = obj.get("metadata", {}).get("labels") or {}
            if _labels_match(listing.labels, labels) and _fields_match(listing.fields, obj):
                out.append(copy.deepcopy(obj))
        return out

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._enter("delete", kind, name)
        self.objects.pop((api_version, kind, namespace, name), None)

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._enter("patch_status", "DeepSeekDeployment", name)
        key = ("deepseek.ai/v1alpha1", "DeepSeekDeployment", namespace, name)
        if key not in self.objects:
            return
        obj = self.objects[key]
        obj["status"] = merge_patch(obj.get("status") or {}, status)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        self._enter("get", "Namespace", namespace)
        return dict(self.namespaces.get(namespace, {}))

    def post_event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self._enter("post_event", "Event", reason)
        self.events.append(
            {
                "object": involved["metadata"]["name"],
                "type": type_,
                "reason": reason,
                "message": message,
            }
        )

    def version(self) -> str:
        return "v1.36.0-fake"

    # ------------------------------------------------------------------------------------------

    def _enter(self, method: str, kind: str, detail: str) -> None:
        self.calls.append((method, kind, detail))
        if self.before is not None:
            self.before(method, kind)
        if kind in self.unserved:
            if method == "delete":
                return
            raise KindNotInstalled(404, "the server could not find the requested resource")

    def _key(self, obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        if obj["kind"] != "Node" and not meta.get("namespace"):
            raise NotFound(404, "an object without a namespace")
        return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def _labels_match(selector: str, labels: dict[str, str]) -> bool:
    """``key=value`` terms and bare ``key`` (has the label), comma-separated, all required."""
    for term in filter(None, selector.split(",")):
        key, has_value, value = term.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


def _fields_match(selector: str, obj: dict[str, Any]) -> bool:
    """``path=value`` terms (``reason=FailedMount``, ``involvedObject.name=x``), all required."""
    for term in filter(None, selector.split(",")):
        field_path, _, value = term.partition("=")
        found: Any = obj
        for part in field_path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found != value:
            return False
    return True
