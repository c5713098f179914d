"""Trim a copy of KEDA's source to the scalers this project's ScaledObjects use.

KEDA compiles every scaler into one Go package (pkg/scalers), so building its operator pulls in
every cloud and database SDK those scalers talk to: 3,710 packages for v2.21.0's operator and
metrics server, 1,959 once trimmed. The operator writes a single trigger type, ``prometheus``
(manifests/scaling.py); cpu and memory cost nothing extra and are kept. This deletes the other
scaler files and rewrites the registry switch in pkg/scaling/scalers_builder.go to the kept
cases. It fails, naming what it looked for, when a KEDA release no longer has the shape it
expects, rather than building something else.

    python3 -m localcluster.keda_trim MODULE_COPY   # from hack/, on a writable copy
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Trigger type -> the file in pkg/scalers that defines it.
KEPT_TRIGGERS = {
    "prometheus": "prometheus_scaler.go",
    "cpu": "cpu_memory_scaler.go",
    "memory": "cpu_memory_scaler.go",
}
# What the kept scalers share: the Scaler interfaces and helpers.
SHARED_FILES = frozenset({"scaler.go"})
# Constants the kept scalers use that another scaler's file defines (v2.21: azure_queue_scaler.go
# holds externalMetricType): carried into CARRIED before that file goes.
CARRIED_CONSTANTS = ("externalMetricType",)
CARRIED = "trimmed_constants.go"
BUILDER = Path("pkg/scaling/scalers_builder.go")
SCALERS = Path("pkg/scalers")

_SWITCH = "\tswitch triggerType {\n"
_START = "// TRIGGERS-START\n"
_END = "// TRIGGERS-END\n"
_CASE = re.compile(r'^\tcase ((?:"[^"]+"(?:, )?)+):\n$')
_DEFAULT = "\tdefault:\n"


class TrimError(RuntimeError):
    """KEDA's source is not shaped as this trim expects (a new release moved it)."""


def trim_registry(source: str, keep: set[str]) -> str:
    """scalers_builder.go with buildScaler's switch reduced to the ``keep`` trigger types."""
    try:
        head, rest = source.split(_START, 1)
        region, tail = rest.split(_END, 1)
        before, body = region.split(_SWITCH, 1)
        cases, default = body.split(_DEFAULT, 1)
    except ValueError:
        raise TrimError(
            f"{BUILDER}: expected buildScaler's `{_SWITCH.strip()}` with a `default:` between "
            f"`{_START.strip()}` and `{_END.strip()}`"
        ) from None
    blocks: list[tuple[set[str], list[str]]] = []
    for line in cases.splitlines(keepends=True):
        match = _CASE.match(line)
        if match:
            blocks.append((set(re.findall(r'"([^"]+)"', match.group(1))), [line]))
        elif line.strip().startswith("//") or not line.strip():
            continue  # a comment about the case below it: dropped with or kept without it
        elif blocks:
            blocks[-1][1].append(line)
        else:
            raise TrimError(f"{BUILDER}: unexpected line before the first case: {line.strip()!r}")
    found = set().union(*(names for names, _ in blocks)) if blocks else set()
    missing = sorted(keep - found)
    if missing:
        raise TrimError(f"{BUILDER}: no case for trigger type(s) {', '.join(missing)}")
    kept = "".join("".join(lines) for names, lines in blocks if names & keep)
    return head + _START + before + _SWITCH + kept + _DEFAULT + default + _END + tail


def carried_constants(sources: dict[str, str], names: tuple[str, ...]) -> str:
    """A Go file defining each constant in ``names`` as ``sources`` (file name -> text) do;
    an error naming the constant when none of them defines it exactly once."""
    lines = []
    for name in names:
        pattern = re.compile(rf'^\s*{re.escape(name)}\s*=\s*("[^"\n]*")\s*$', re.MULTILINE)
        found = {m.group(1) for text in sources.values() for m in pattern.finditer(text)}
        if len(found) != 1:
            raise TrimError(
                f"{SCALERS}: expected one string constant {name} in the deleted scalers, "
                f"found {sorted(found) or 'none'}"
            )
        lines.append(f"const {name} = {found.pop()}\n")
    return "// Written by hack/localcluster/keda_trim.py.\n\npackage scalers\n\n" + "".join(lines)


def files_to_delete(names: list[str], keep: set[str]) -> list[str]:
    """The Go files of pkg/scalers (one directory level) that the kept triggers do not need.
    Tests go too: they share fixtures across scalers, and nothing here runs them."""
    wanted = {KEPT_TRIGGERS[t] for t in keep} | SHARED_FILES
    return sorted(n for n in names if n.endswith(".go") and n not in wanted)


def trim(module: Path, keep: set[str] | None = None) -> list[str]:
    """Trim the writable copy at ``module`` in place; returns the deleted file names."""
    keep = set(KEPT_TRIGGERS) if keep is None else keep
    unknown = sorted(keep - set(KEPT_TRIGGERS))
    if unknown:
        raise TrimError(f"no known scaler file for trigger type(s) {', '.join(unknown)}")
    builder = module / BUILDER
    scalers = module / SCALERS
    if not builder.is_file() or not scalers.is_dir():
        raise TrimError(f"{module}: expected {BUILDER} and {SCALERS}/ (is this KEDA's module?)")
    names = [p.name for p in scalers.iterdir() if p.is_file()]
    absent = sorted(({KEPT_TRIGGERS[t] for t in keep} | SHARED_FILES) - set(names))
    if absent:
        raise TrimError(f"{SCALERS}: missing {', '.join(absent)}")
    builder.write_text(trim_registry(builder.read_text(), keep))
    deleted = files_to_delete(names, keep)
    sources = {n: (scalers / n).read_text() for n in deleted if not n.endswith("_test.go")}
    carried = carried_constants(sources, CARRIED_CONSTANTS)
    for name in deleted:
        (scalers / name).unlink()
    (scalers / CARRIED).write_text(carried)
    return deleted


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        deleted = trim(Path(args[0]))
    except TrimError as error:
        print(f"keda_trim: {error}", file=sys.stderr)
        return 1
    print(f"keda_trim: kept {', '.join(sorted(KEPT_TRIGGERS))}; deleted {len(deleted)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
