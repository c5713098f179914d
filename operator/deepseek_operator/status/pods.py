"""Why pods are not ready, in the words Kubernetes itself uses: the scheduler's message, the
kubelet's waiting reason, the last termination. Pure: pods as the API returned them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Most telling first: what has to be fixed before anything else can happen.
REASONS = (
    "Unschedulable",
    "CreateContainerConfigError",  # e.g. a missing Secret or ConfigMap key
    "FailedMount",  # a volume's Secret, ConfigMap or claim is missing: said only in an Event
    "InvalidImageName",
    "ErrImageNeverPull",  # imagePullPolicy Never and the node does not have it
    "ErrImagePull",
    "ImagePullBackOff",
    "OOMKilled",
    "CrashLoopBackOff",
    "CreateContainerError",
    "RunContainerError",
    "Evicted",
    "Failed",
)
WAITING = set(REASONS) - {"Unschedulable", "FailedMount", "OOMKilled", "Evicted", "Failed"}
# Waiting reasons that are normal for a while, unless an Event says what holds them up.
STARTING = {"ContainerCreating", "PodInitializing"}


@dataclass(frozen=True, slots=True)
class PodProblem:
    pod: str
    reason: str  # one of REASONS
    message: str


def pod_problems(
    pods: list[dict[str, Any]], events: list[dict[str, Any]] | None = None
) -> list[PodProblem]:
    """One problem per pod that has one, most telling first. ``events`` are FailedMount events
    (reason, involvedObject.name, message): what a pod stuck in ContainerCreating waits for."""
    mounts = {
        (e.get("involvedObject") or {}).get("name"): str(e.get("message") or "")
        for e in sorted(events or [], key=_event_time)
        if e.get("reason") == "FailedMount"
    }
    found = [p for p in (_problem(pod, mounts) for pod in pods) if p is not None]
    return sorted(found, key=lambda p: (REASONS.index(p.reason), p.pod))


def needs_events(pods: list[dict[str, Any]]) -> bool:
    """Whether some pod waits in a state only an Event explains (worth one more read)."""
    return any(_starting(pod) for pod in pods)


def _starting(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    return any(
        ((c.get("state") or {}).get("waiting") or {}).get("reason") in STARTING for c in statuses
    )


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


def describe(problems: list[PodProblem], most: int = 3) -> str:
    """``pod NAME (Reason): message; ...``, pods with the same problem said once."""
    groups: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        groups.setdefault((problem.reason, problem.message), []).append(problem.pod)
    parts = []
    for (reason, message), names in list(groups.items())[:most]:
        who = f"pod {names[0]}" if len(names) == 1 else f"{len(names)} pods ({', '.join(names)})"
        parts.append(f"{who} ({reason}): {message}")
    if len(groups) > most:
        parts.append(f"and {len(groups) - most} more")
    return "; ".join(parts)


def _problem(pod: dict[str, Any], mounts: dict[Any, str]) -> PodProblem | None:
    name = str((pod.get("metadata") or {}).get("name", "?"))
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        reason = str(status.get("reason") or "Failed")
        return PodProblem(
            name, reason if reason in REASONS else "Failed", status.get("message") or "failed"
        )
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return PodProblem(name, "Unschedulable", _scheduler_words(cond.get("message", "")))
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in statuses:
        found = _container_problem(pod, container)
        if found is not None:
            return PodProblem(name, *found)
    if name in mounts and _starting(pod):
        return PodProblem(name, "FailedMount", mounts[name])
    return None


def _container_problem(pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, str] | None:
    name = container.get("name", "?")
    state = container.get("state") or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    ended = state.get("terminated") or last
    if ended.get("reason") == "OOMKilled":
        limit = _memory_limit(pod, name)
        within = f" of {limit}" if limit else ""
        return "OOMKilled", (
            f"container {name} was killed for using more than its memory limit{within}: raise "
            "spec.resources.memory, or lower maxConcurrentSequences or maxModelLen"
        )
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    if reason not in WAITING:
        return None
    if reason == "CrashLoopBackOff" and last:
        said = (last.get("message") or "").strip()
        return reason, (
            f"container {name} keeps exiting, last with code {last.get('exitCode')} "
            f"({last.get('reason', 'Error')})" + (f": {said}" if said else "")
        )
    return reason, f"container {name}: {waiting.get('message') or reason}"


def _scheduler_words(message: str) -> str:
    """The scheduler's verdict without its notes on preemption and dynamic resource claims:
    '0/2 nodes are available: 2 Insufficient nvidia.com/gpu. no new claims to deallocate,
    preemption: 0/2 nodes are available: ...' says '... 2 Insufficient nvidia.com/gpu.'"""
    verdict = message.split("preemption:", 1)[0].replace("no new claims to deallocate", "")
    verdict = verdict.strip(" ,.")
    return f"{verdict}." if verdict else "the scheduler found no node for it"


def _memory_limit(pod: dict[str, Any], container: str) -> str | None:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == container:
            return ((c.get("resources") or {}).get("limits") or {}).get("memory")
    return None
