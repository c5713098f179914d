"""hack/devkit: what tests and benchmarks share."""

from __future__ import annotations

import numpy as np
import pytest
from devkit.ports import free_ports
from devkit.stats import percentile


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = free_ports(8)
    assert len(set(ports)) == 8
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_nan() -> None:
    assert percentile([], 50) != percentile([], 50)
