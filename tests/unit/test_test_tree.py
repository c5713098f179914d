"""The test tree collects as one: `make test` runs `pytest tests`, and pytest's default import mode
puts each test directory on sys.path, so two test modules with one basename in different folders
break the whole collection (it did in CI: tests/runtime and tests/unit/runtime/model both had a
test_gguf_weights.py, and each suite alone was green)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_modules_in_the_test_tree_share_a_basename() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name not in ("__init__.py", "conftest.py") and "__pycache__" not in path.parts:
            where[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
