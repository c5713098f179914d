"""The run dir's state.json: what `up` started, so that `down` stops exactly that."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .api import probe
from .processes import process_start_time


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / "state.json")


def healthy(run_dir: Path) -> bool:
    """Every recorded process is still the one we started and the API server is ready."""
    state = read_state(run_dir)
    if not state or not state.get("ready"):
        return False
    for proc in state["processes"]:
        if process_start_time(proc["pid"]) != proc["start_time"]:
            return False
    return probe(state["server"] + "/readyz", Path(state["ca_file"]), state["token"])


def recorded_components(state: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    for proc in state.get("processes", []):
        yield proc["name"], int(proc["pid"]), str(proc["start_time"])
