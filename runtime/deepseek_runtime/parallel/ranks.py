"""The other ranks of this pod, as child processes: started by the pod's first rank, watched,
and all stopped together. Any child that exits ends the replica (`on_exit`), and a child whose
parent dies is killed by the kernel (PR_SET_PDEATHSIG), so no rank outlives its pod's server.
That signal follows the *thread* that forked the child: start them from the main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
POLL_S = 0.2
STOP_WAIT_S = 5.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # Ctrl-C in a terminal reaches the whole process group: rank 0 drains and tells the other
    # ranks to stop; they must not die of it first (rank 0 would call that a lost rank).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalRanks:
    def __init__(self, commands: Mapping[int, Sequence[str]], on_exit: Callable[[str], None]):
        self.commands = commands
        self.on_exit = on_exit
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()

    def start(self) -> LocalRanks:
        for rank, command in self.commands.items():
            child = subprocess.Popen(list(command), preexec_fn=_die_with_parent)
            self.children[rank] = child
            log.info("rank %d started (pid %d)", rank, child.pid)
        if self.children:
            threading.Thread(target=self._watch, name="tp-ranks", daemon=True).start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            for rank, child in self.children.items():
                code = child.poll()  # 0: a follower told to stop by rank 0 (a clean shutdown)
                if code and not self._stopping.is_set():
                    self.on_exit(f"rank {rank} (pid {child.pid}) exited with code {code}")
                    return

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """SIGTERM every child still running, then SIGKILL what is left after wait_s."""
        self._stopping.set()
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + wait_s
        for child in self.children.values():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
