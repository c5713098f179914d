"""Processes this package starts, waits for and stops: only its own, by pid and start time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import STOP_GRACE_S, ClusterError, log


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: with the pid, it names one process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has already exited
        return None
    return fields[19]


@dataclass
class Component:
    name: str
    argv: list[str]
    health_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    pid: int = 0
    start_time: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            # A session of its own: a Ctrl-C meant for the caller (demo, pytest) does not reach
            # the cluster; only `down` stops it, by pid.
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.log_path.parent,
                env={**os.environ, **self.env} if self.env else None,
            )
        self.pid = self.process.pid
        self.start_time = process_start_time(self.pid) or ""

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return bool(self.pid) and process_start_time(self.pid) == self.start_time

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, component: Component | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component is not None and not component.alive():
            raise ClusterError(
                f"{component.name} exited while waiting for {what}; last lines of "
                f"{component.log_path}:\n{component.log_tail()}"
            )
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    tail = f"; last lines of {component.log_path}:\n{component.log_tail()}" if component else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def stop_pids(entries: list[tuple[str, int, str]], grace: float = STOP_GRACE_S) -> None:
    """Newest first, one at a time: SIGTERM, then SIGKILL if it outlives the grace period. The
    API server goes before etcd so that it can shut down cleanly instead of retrying a dead
    store. A pid is only signalled while its start time still matches the recorded one."""
    for name, pid, start in reversed(entries):
        if process_start_time(pid) != start:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process_start_time(pid) == start and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_start_time(pid) == start:
            log(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
