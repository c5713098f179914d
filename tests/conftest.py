"""Suite-wide rules. In CI the cluster and runtime suites must run: a skip there is a failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests/ for the suites' shared helpers; hack/ for devkit (shared with the benchmarks).
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "hack"))

MUST_RUN = ("cluster", "runtime")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if in_ci and report.skipped and any(item.get_closest_marker(m) for m in MUST_RUN):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped in CI, where the {MUST_RUN} suites must run"
