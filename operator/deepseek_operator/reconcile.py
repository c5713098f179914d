"""Desired vs actual, level-based: the only place that decides what to write to the cluster.

``reconcile`` (create, resume, update, drift repair) reads what the plan needs (the GPU nodes'
labels, the namespace's Pod Security level), validates the spec and plans GPUs, applies every
child whole (server-side apply, so a second run is a no-op and a restart is harmless), removes
optional children no longer wanted, then reads the children (``observe``) and writes the status
``status.status_of`` computes from them, with an Event for each new problem. ``refresh_status``
does the last two steps alone. Bad input never touches the children: it becomes
``Ready=False, reason SpecInvalid``. Neither does a plan of several nodes per replica in a
cluster that does not serve LeaderWorkerSets: ``Ready=False, reason LeaderWorkerSetNotInstalled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from deepseek_operator import status as st
from deepseek_operator.api import API_VERSION, KIND, DeepSeekDeploymentSpec, parse_spec
from deepseek_operator.api import error_fields as spec_errors
from deepseek_operator.catalog import PRODUCT_LABEL, GpuProduct, advertised_gpus
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.kube import KindNotInstalled, Kube, KubeError, Listing
from deepseek_operator.manifests import (
    DEPLOYMENT,
    LEADER_WORKER_SET,
    MAX_GROUP_NAME_LENGTH,
    Target,
    children,
    optional_children,
    selector,
)
from deepseek_operator.sizing import SizingError

log = logging.getLogger(__name__)

# Children that exist only for some specs or plans (the pods run in a Deployment or, for a
# replica of several nodes, a LeaderWorkerSet); anything here but not desired is deleted.
OPTIONAL_KINDS = [
    DEPLOYMENT,
    LEADER_WORKER_SET,
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a reconcile did, for the caller to log."""

    valid: bool
    message: str


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_name(child: dict[str, Any]) -> str | None:
    for ref in (child.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith("deepseek.ai/"):
            return str(ref["name"])
    return None


def validate(
    body: dict[str, Any], cluster_gpus: Callable[[], list[GpuProduct] | None] | None = None
) -> tuple[Target | None, list[str]]:
    """(target, problems): the target is None when the spec cannot be served; each problem
    starts with the field it is about. ``cluster_gpus`` reads what the nodes advertise, called
    only when the spec names no GPU product or memory (without it: not known)."""
    meta = body["metadata"]
    try:
        spec: DeepSeekDeploymentSpec = parse_spec(body.get("spec") or {})
    except ValidationError as exc:
        return None, spec_errors(exc)
    gpu = spec.resources.gpu
    offered = cluster_gpus() if cluster_gpus and not (gpu.product or gpu.memory_gi_b) else None
    try:
        plan = plan_for_spec(spec, cluster_gpus=offered)
    except SizingError as exc:
        return None, [f"{exc.field_path}: {exc}"]
    target = Target(meta["name"], meta["namespace"], spec, plan)
    if target.nodes > 1 and len(target.name) > MAX_GROUP_NAME_LENGTH:
        return None, [
            f"metadata.name: {target.nodes} nodes per replica run as a LeaderWorkerSet, whose "
            f"pods' names (NAME-GROUP-WORKER) allow a name of at most {MAX_GROUP_NAME_LENGTH} "
            f"characters; {target.name!r} has {len(target.name)}"
        ]
    return target, []


def read_cluster_gpus(kube: Kube) -> list[GpuProduct] | None:
    """The GPUs the cluster's nodes advertise; None when the operator may not list nodes."""
    try:
        nodes = kube.list(Listing("v1", "Node", None, labels=PRODUCT_LABEL))
    except KubeError as exc:
        if exc.status != 403:
            raise
        log.warning("cannot list nodes to size GPUs (%s): assuming a GPU", exc)
        return None
    return advertised_gpus((n.get("metadata") or {}).get("labels") or {} for n in nodes)


def pod_security_problem(
    spec: DeepSeekDeploymentSpec,
    namespace_labels: dict[str, str],
) -> str | None:
    """What the namespace's Pod Security admission would refuse, said before pods are made."""
    level = namespace_labels.get("pod-security.kubernetes.io/enforce", "privileged")
    if spec.model.source.host_path is not None and level in ("baseline", "restricted"):
        return (
            f"spec.model.source.hostPath: the namespace enforces the {level} Pod Security "
            "Standard, which forbids hostPath volumes; put the weights on a PVC or in the "
            "image"
        )
    return None


def reconcile(kube: Kube, body: dict[str, Any]) -> Outcome:
    meta = body["metadata"]
    generation = meta.get("generation")
    old = body.get("status") or {}
    target, problems = validate(body, lambda: read_cluster_gpus(kube))
    if target is not None and target.spec.model.source.host_path is not None:
        labels = kube.namespace_labels(meta["namespace"])
        blocked = pod_security_problem(target.spec, labels)
        if blocked:
            target, problems = None, [blocked]
    if target is None:
        message = "; ".join(problems)
        invalid = {
            "phase": "Failed",
            "observedGeneration": generation,
            "conditions": st.merge_conditions(
                old.get("conditions") or [],
                [st.condition(st.READY, False, "SpecInvalid", message, generation)],
            ),
        }
        write_status(kube, body, invalid)
        return Outcome(False, message)

    if workload_served(kube, target):
        workload = apply_children(kube, target, owner_reference(body))
        observed = observe(kube, target, workload)
    else:
        observed = observe(kube, target, None)  # its status says what to install
    write_status(kube, body, st.status_of(target, observed, old, generation))
    summary = target.plan.summary() if target.plan else "GPU count given; model not sized"
    return Outcome(True, summary)


def workload_served(kube: Kube, target: Target) -> bool:
    """Whether the cluster serves the kind that would run the pods (a LeaderWorkerSet needs its
    CRD). When it does not, nothing is applied nor deleted: the children of an earlier spec
    keep serving, and a new resource gets no half of its children."""
    if target.workload == DEPLOYMENT:
        return True
    try:
        kube.get(*target.workload, target.namespace, target.name)
    except KindNotInstalled:
        return False
    return True


def apply_children(kube: Kube, target: Target, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Apply every desired child whole and delete optional ones no longer wanted (the other
    workload kind among them); returns the workload as applied. A kind the cluster does not
    serve is skipped (observe() finds it again, and the status says so)."""
    workload = None
    desired = children(target)
    for child in desired:
        child["metadata"]["ownerReferences"] = [owner]
        try:
            applied = kube.apply(child)
        except KindNotInstalled:
            continue
        if (child["apiVersion"], child["kind"]) == target.workload:
            workload = applied
    wanted = {(c["apiVersion"], c["kind"]) for c in desired}
    for api_version, kind in OPTIONAL_KINDS:
        if (api_version, kind) not in wanted:
            kube.delete(api_version, kind, target.namespace, target.name)
    return workload


def observe(kube: Kube, target: Target, workload: dict[str, Any] | None) -> st.Observed:
    """Read what the status is computed from: the workload (as just applied, when given), its
    pods when the status needs them (integrity, or pods not ready: their reasons), and the
    optional children the spec asks for."""
    namespace, name = target.namespace, target.name
    unserved = set()
    if workload is None:
        try:
            workload = kube.get(*target.workload, namespace, name)
        except KindNotInstalled:
            unserved.add(target.workload[1])
    pods, events = [], []
    if target.spec.model.integrity is not None or not _all_ready(workload):
        pods = kube.list(Listing("v1", "Pod", namespace, labels=selector(name)))
    if st.needs_events(pods):
        events = kube.list(Listing("v1", "Event", namespace, fields="reason=FailedMount"))
    autoscaler = None
    for child in optional_children(target):
        try:
            found = kube.get(child["apiVersion"], child["kind"], namespace, name)
        except KindNotInstalled:
            unserved.add(child["kind"])
            continue
        if child["kind"] != "ServiceMonitor":
            autoscaler = found
    return st.Observed(workload, pods, autoscaler, frozenset(unserved), pod_events=events)


def refresh_status(kube: Kube, body: dict[str, Any]) -> dict[str, Any] | None:
    """Recompute status from the children without writing them; None when nothing changed."""
    meta = body["metadata"]
    target, _ = validate(body, lambda: read_cluster_gpus(kube))
    if target is None:
        return None  # an invalid spec keeps its SpecInvalid status until the spec changes
    old = body.get("status") or {}
    new = st.status_of(target, observe(kube, target, None), old, meta.get("generation"))
    if _same(old, new):
        return None
    write_status(kube, body, new)
    return new


def write_status(kube: Kube, body: dict[str, Any], new: dict[str, Any]) -> None:
    """Patch the status, then post an Event for each problem it states anew (best effort: an
    event that cannot be posted must not fail the reconcile; the status already says it)."""
    meta = body["metadata"]
    kube.patch_status(meta["namespace"], meta["name"], new)
    old_conditions = (body.get("status") or {}).get("conditions") or []
    for reason, message in st.alerts(old_conditions, new.get("conditions") or []):
        try:
            kube.post_event(body, "Warning", reason, message)
        except KubeError as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, *_key(meta), exc)


def _all_ready(workload: dict[str, Any] | None) -> bool:
    if workload is None:
        return True  # no pods to ask
    desired = (workload.get("spec") or {}).get("replicas", 1)
    return int((workload.get("status") or {}).get("readyReplicas") or 0) >= int(desired or 0)


def _key(meta: dict[str, Any]) -> tuple[str, str]:
    return meta["namespace"], meta["name"]


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether patching ``new`` would change ``old`` (a None in the patch deletes a key)."""
    return all(_stored(old.get(k)) == _stored(v) for k, v in new.items())


def _stored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items() if v is not None}
    return value
