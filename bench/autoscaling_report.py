"""bench/autoscaling.py's report: the episode's figures as a Markdown table, and a plot of the
queue length and the replicas over time (people read a scaling episode from a picture)."""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.episode import Sample


@dataclass
class Episode:
    samples: list[Sample]
    load_started: float  # seconds on the samples' clock
    load_stopped: float  # when the 16 clients stopped (2 went on until one pod was left)
    second_pod_ready_s: float  # from load start
    back_to_one_s: float  # from the load's drop
    ok: int
    failed: int
    errors: dict[str, int]
    concurrency: int
    max_tokens: int
    autoscaling: dict[str, Any]


def plot(episode: Episode, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    t = [s.t - episode.load_started for s in episode.samples]
    fig, queue_axis = plt.subplots(figsize=(9, 4.8), dpi=110)
    queue_axis.plot(t, [sum(s.queue.values()) for s in episode.samples], color="tab:red",
                    label="waiting requests (sum over pods)")  # fmt: skip
    per_pod = [sum(s.queue.values()) / max(len(s.queue), 1) for s in episode.samples]
    queue_axis.plot(t, per_pod, color="tab:orange", linestyle=":",
                    label="waiting per pod (what the HPA averages)")  # fmt: skip
    target = episode.autoscaling["targetQueueLength"]
    queue_axis.axhline(target, color="tab:orange", linewidth=0.8, alpha=0.6)
    queue_axis.set_xlabel("seconds since the load started")
    queue_axis.set_ylabel("deepseek_requests_waiting")
    replicas_axis = queue_axis.twinx()
    replicas_axis.step(t, [s.desired for s in episode.samples], where="post", color="tab:blue",
                       label="desired replicas (HPA)")  # fmt: skip
    replicas_axis.step(t, [s.ready for s in episode.samples], where="post", color="tab:green",
                       label="Ready pods")  # fmt: skip
    replicas_axis.set_ylabel("replicas")
    replicas_axis.set_ylim(0, episode.autoscaling["maxReplicas"] + 0.5)
    replicas_axis.set_yticks(range(episode.autoscaling["maxReplicas"] + 1))
    for x, text in (
        (0.0, "load on"),
        (episode.load_stopped - episode.load_started, "16 -> 2 clients"),
    ):
        queue_axis.axvline(x, color="grey", linestyle="--", linewidth=0.8)
        queue_axis.annotate(text, (x, queue_axis.get_ylim()[1]), fontsize=8, ha="left", va="top")
    handles = queue_axis.get_legend_handles_labels()
    more = replicas_axis.get_legend_handles_labels()
    queue_axis.legend(
        handles[0] + more[0], handles[1] + more[1], loc="upper center",
        bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False,
    )  # fmt: skip
    queue_axis.set_title(
        f"HPA on queue length: {episode.concurrency} clients, SmolLM2-135M on a 2-core real node"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def peak_queue(episode: Episode) -> float:
    return max(sum(s.queue.values()) for s in episode.samples)


def write_report(episode: Episode, out: Path) -> None:
    png = out.with_suffix(".png")
    plot(episode, png)
    auto = episode.autoscaling
    rows = [
        ("load", f"{episode.concurrency} concurrent chat requests, max_tokens "
                 f"{episode.max_tokens}, fresh connection each, through the Service; then 2 "
                 "clients (max_tokens 16) until one pod is left"),
        ("autoscaling", f"HPA {auto['minReplicas']}..{auto['maxReplicas']}, target "
                        f"{auto['targetQueueLength']} waiting per pod, scale-down window "
                        f"{auto['scaleDownStabilizationSeconds']} s"),
        ("load start -> second pod Ready", f"{episode.second_pod_ready_s:.0f} s"),
        ("load drop (16 -> 2 clients) -> one pod", f"{episode.back_to_one_s:.0f} s"),
        ("peak desired replicas", str(max(s.desired for s in episode.samples))),
        ("peak waiting requests (sum)", f"{peak_queue(episode):.0f}"),
        ("requests ok / failed", f"{episode.ok} / {episode.failed}"),
    ]  # fmt: skip
    lines = [
        "# Autoscaling on queue length: one episode on real pods",
        "",
        f"`bench/autoscaling.py`, {dt.date.today()}, {platform.machine()}, local cluster with a "
        "real node (kubelet + containerd), Prometheus and prometheus-adapter built from their "
        "Go modules, the chart's adapter rules. The real HPA controller scales the runtime "
        "Deployment the operator made.",
        "",
        f"![queue length and replicas over time]({png.name})",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    if episode.errors:
        lines += ["Failed requests:", "", *(f"- {n} x {e}" for e, n in episode.errors.items()), ""]
    lines += [
        "## Queue length over time",
        "",
        "| t (s from load start) | desired | Ready | waiting per pod |",
        "| ---: | ---: | ---: | --- |",
    ]
    step = max(1, len(episode.samples) // 40)  # about 40 rows: the plot has every sample
    for sample in episode.samples[::step]:
        queue = ", ".join(f"{v:.0f}" for _pod, v in sorted(sample.queue.items())) or "-"
        lines.append(
            f"| {sample.t - episode.load_started:.0f} | {sample.desired} | {sample.ready} "
            f"| {queue} |"
        )
    out.write_text("\n".join(lines) + "\n")
