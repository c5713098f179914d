"""bench/reconcile.py's eyes: one watch per child kind and one on the CRs, recording the first
time each child and each Ready status (for the current generation) is seen."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

GROUP, VERSION, PLURAL = "deepseek.ai", "v1alpha1", "deepseekdeployments"

CHILD_KINDS = [
    "deployments",
    "services",
    "configmaps",
    "serviceaccounts",
    "networkpolicies",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
]


@dataclass
class Observations:
    """First time (monotonic) each child and each Ready status was seen, by CR name."""

    children: dict[str, dict[str, float]] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw_child(self, kind: str, name: str, at: float) -> None:
        owner = name.removesuffix("-runtime") if kind == "configmaps" else name
        with self.lock:
            self.children.setdefault(owner, {}).setdefault(kind, at)

    def saw_ready(self, name: str, at: float) -> None:
        with self.lock:
            self.ready.setdefault(name, at)


def list_function(kind: str, namespace: str) -> Callable[..., Any]:
    core, apps = client.CoreV1Api(), client.AppsV1Api()
    functions: dict[str, Callable[..., Any]] = {
        "deployments": apps.list_namespaced_deployment,
        "services": core.list_namespaced_service,
        "configmaps": core.list_namespaced_config_map,
        "serviceaccounts": core.list_namespaced_service_account,
        "networkpolicies": client.NetworkingV1Api().list_namespaced_network_policy,
        "poddisruptionbudgets": client.PolicyV1Api().list_namespaced_pod_disruption_budget,
        "horizontalpodautoscalers": (
            client.AutoscalingV2Api().list_namespaced_horizontal_pod_autoscaler
        ),
    }
    return functions[kind]


def watch_children(kind: str, namespace: str, seen: Observations, stop: threading.Event) -> None:
    fn = list_function(kind, namespace)
    selector = "app.kubernetes.io/managed-by=deepseek-operator"
    while not stop.is_set():
        w = watch.Watch()
        with contextlib.suppress(Exception):
            for event in w.stream(fn, namespace, label_selector=selector, timeout_seconds=5):
                if event["type"] == "ADDED":
                    seen.saw_child(kind, event["object"].metadata.name, time.monotonic())
                if stop.is_set():
                    w.stop()


def watch_ready(namespace: str, seen: Observations, stop: threading.Event) -> None:
    api = client.CustomObjectsApi()
    while not stop.is_set():
        w = watch.Watch()
        with contextlib.suppress(Exception):
            for event in w.stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                timeout_seconds=5,
            ):
                obj = event["object"]
                status = obj.get("status") or {}
                if status.get("phase") == "Ready" and status.get("observedGeneration") == obj[
                    "metadata"
                ].get("generation"):
                    seen.saw_ready(obj["metadata"]["name"], time.monotonic())
                if stop.is_set():
                    w.stop()
