"""bench/reconcile.py's table and its verdicts against the targets."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import psutil
from devkit.stats import percentile

from reconcile_round import Round

TARGETS = {
    "p50 apply->children, 1 CR": "< 0.5 s",
    "300 CRs converged": "< 60 s",
    "operator RSS": "< 250 MB",
    "idle CPU": "near zero",
}


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; etcd, kube-apiserver, controller-manager, "
        f"scheduler, kwok and the operator all on the same cores"
    )


def report(rounds: list[Round], versions: dict[str, str], idle_s: float) -> str:
    lines = [
        "# Reconcile benchmark",
        "",
        f"Machine: {machine()}.",
        f"Control plane: Kubernetes {versions.get('K8S_VERSION')}, etcd "
        f"{versions.get('ETCD_VERSION')}, kwok {versions.get('KWOK_VERSION')} "
        "(hack/localcluster); pods are made Ready by kwok, nothing runs in them.",
        "Each round: a fresh namespace and a freshly started operator (`deepseek-operator run "
        "--namespace`, admin token), CRs created back to back with the Python client; times "
        "are from the client's watch events (first ADDED of the last child; first Ready status "
        "with observedGeneration == generation).",
        "",
        "| CRs | autoscaling | create all (s) | apply->children p50 / p99 (s) | "
        "apply->Ready p50 / p99 (s) | converged (s) | peak RSS (MB) | CPU while converging (s)"
        f" | idle CPU over {idle_s:.0f} s (% of a core) | missing |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rounds:
        lines.append(
            f"| {r.count} | {r.mode} | {r.apply_s:.2f} | "
            f"{percentile(r.children_s, 50):.3f} / {percentile(r.children_s, 99):.3f} | "
            f"{percentile(r.ready_s, 50):.3f} / {percentile(r.ready_s, 99):.3f} | "
            f"{r.converged_s:.1f} | {r.peak_rss_mb:.0f} | {r.busy_cpu_s:.2f} | "
            f"{r.idle_cpu_percent:.2f} | {r.missing} |"
        )
    lines += ["", "Against the targets:", ""]
    lines += verdicts(rounds)
    lines.append("")
    return "\n".join(lines)


def verdicts(rounds: list[Round]) -> list[str]:
    def by_mode(values: dict[str, float], unit: str) -> str:
        return ", ".join(f"{v:.3g} {unit} ({mode})" for mode, v in values.items())

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out = []
    one = {r.mode: percentile(r.children_s, 50) for r in rounds if r.count == 1}
    if one:
        ok = all(v < 0.5 for v in one.values())
        out.append(
            f"- p50 apply->children with 1 CR {TARGETS['p50 apply->children, 1 CR']}: "
            f"{by_mode(one, 's')}: {met(ok)}"
        )
    big = {r.mode: r.converged_s for r in rounds if r.count == 300}
    if big:
        ok = all(v < 60 for v in big.values())
        out.append(
            f"- 300 CRs converged {TARGETS['300 CRs converged']}: {by_mode(big, 's')}: {met(ok)}"
        )
    rss = max(r.peak_rss_mb for r in rounds)
    out.append(f"- operator RSS {TARGETS['operator RSS']}: at most {rss:.0f} MB: {met(rss < 250)}")
    idle = {f"{r.count} CRs {r.mode}": r.idle_cpu_percent for r in rounds}
    worst = max(idle.values())
    out.append(
        f"- idle CPU {TARGETS['idle CPU']}: at most {worst:.2f} % of a core "
        f"({max(idle, key=lambda k: idle[k])}), "
        f"{met(worst < 5)} (read as < 5 % of one core)"
    )
    return out
