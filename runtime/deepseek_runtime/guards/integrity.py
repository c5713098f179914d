"""Weight integrity: a SHA-256 manifest of every file in a model directory.

`write_manifest` records {version, files: [{path, sha256, size}]}; `verify_manifest` re-hashes
the directory in streaming chunks (weights are tens of GB: never read a file whole) and reports
every file that differs, is missing, or is extra, so `serve --verify-manifest` can refuse to
start BEFORE anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
CHUNK_BYTES = 8 * 1024 * 1024
PROGRESS_EVERY_S = 5.0


class ManifestError(Exception):
    """The manifest file itself is unreadable or malformed."""


@dataclass(slots=True, frozen=True)
class FileEntry:
    path: str  # POSIX path relative to the model directory
    sha256: str
    size: int


@dataclass(slots=True)
class VerifyReport:
    checked: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.extra)

    def problems(self) -> list[str]:
        return (
            [f"{p}: content differs from the manifest" for p in self.mismatched]
            + [f"{p}: missing (listed in the manifest)" for p in self.missing]
            + [f"{p}: extra file (not in the manifest)" for p in self.extra]
        )


class _Progress:
    """Logs hashing progress at most every few seconds: a 60 GB check must not look hung."""

    def __init__(self, total_bytes: int, sink: Callable[[str], None]) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.sink = sink
        self.started = self.last = time.monotonic()

    def add(self, n: int, current: str) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9) / 1e6
            pct = 100.0 * self.done / self.total
            self.sink(
                f"hashing weights: {pct:.0f}% ({self.done}/{self.total} bytes, "
                f"{rate:.0f} MB/s), at {current}"
            )


def list_files(root: Path) -> list[str]:
    """Every regular file under root, as sorted POSIX relative paths (symlinks followed)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _hash_file(path: Path, progress: _Progress | None, name: str) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            if progress:
                progress.add(len(chunk), name)
    return digest.hexdigest()


def _sink(message: str) -> None:
    log.info(message)


def build_manifest(
    root: Path, exclude: tuple[str, ...] = (), sink: Callable[[str], None] = _sink
) -> dict[str, Any]:
    names = [n for n in list_files(root) if n not in exclude]
    progress = _Progress(sum((root / n).stat().st_size for n in names), sink)
    files = [
        {"path": n, "sha256": _hash_file(root / n, progress, n), "size": (root / n).stat().st_size}
        for n in names
    ]
    return {"version": MANIFEST_VERSION, "files": files}


def dump_manifest(manifest: dict[str, Any], path: Path | None) -> str:
    """JSON by default; YAML when the target file ends in .yaml/.yml."""
    if path is not None and path.suffix in (".yaml", ".yml"):
        return yaml.safe_dump(manifest, sort_keys=False)
    return json.dumps(manifest, indent=2) + "\n"


def load_manifest(path: Path) -> list[FileEntry]:
    try:
        doc = yaml.safe_load(path.read_text())  # YAML is a superset of JSON: one parser
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{path}: not a version {MANIFEST_VERSION} weight manifest")
    files = doc.get("files")
    if not isinstance(files, list):
        raise ManifestError(f"{path}: 'files' must be a list")
    entries = []
    for i, item in enumerate(files):
        try:
            entry = FileEntry(str(item["path"]), str(item["sha256"]).lower(), int(item["size"]))
        except (TypeError, KeyError, ValueError) as exc:
            raise ManifestError(f"{path}: files[{i}] needs path, sha256 and size") from exc
        if Path(entry.path).is_absolute() or ".." in Path(entry.path).parts:
            raise ManifestError(f"{path}: files[{i}].path must stay inside the model directory")
        entries.append(entry)
    return entries


def verify_manifest(
    root: Path, manifest_path: Path, sink: Callable[[str], None] = _sink
) -> VerifyReport:
    entries = load_manifest(manifest_path)
    expected = {e.path: e for e in entries}
    # The manifest may live inside the directory it describes; it cannot list its own hash.
    own = _relative_to(manifest_path, root)
    present = set(list_files(root)) - ({own} if own else set())
    report = VerifyReport(
        missing=sorted(set(expected) - present), extra=sorted(present - set(expected))
    )
    to_hash = sorted(set(expected) & present)
    progress = _Progress(sum(expected[n].size for n in to_hash), sink)
    for name in to_hash:
        entry, path = expected[name], root / name
        report.checked += 1
        # A size mismatch is decisive and free: skip hashing a truncated 10 GB shard.
        if path.stat().st_size != entry.size or _hash_file(path, progress, name) != entry.sha256:
            report.mismatched.append(name)
    sink(f"verified {report.checked} files against {manifest_path}")
    return report


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None
