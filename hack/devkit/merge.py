"""JSON merge patch (RFC 7386), for tests that build specs from a base and for the in-memory API
that applies status patches the way the API server does."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` onto a copy of `target`: objects merge, null deletes, everything else replaces."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
