#!/usr/bin/env python3
"""Build llama.cpp's `llama-server` (the peer of bench/cpu_peer.py) from the llama.cpp sources
that the `llama-cpp-python` sdist vendors, and cache the binary outside the repository.

    python bench/llama_server.py [--version 0.3.36] [--jobs 2]

Prints the binary's path. The binary is cached by version under
~/.cache/deepseek-operator/llama-server-<version>/llama-server, so only the first call builds
(about 200 compile steps: many minutes on two cores). It is a benchmark dependency only:
nothing in `make test` needs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_VERSION = "0.3.36"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepseek-operator"


def binary_path(version: str = DEFAULT_VERSION) -> Path:
    return CACHE / f"llama-server-{version}" / "llama-server"


def _download_sdist(version: str, into: Path) -> Path:
    # --no-binary for this one package makes pip fetch its source distribution (which vendors
    # llama.cpp) while its build backend still comes as wheels (:all: would build those too).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            "llama-cpp-python",
            "--dest",
            str(into),
            f"llama-cpp-python=={version}",
        ],
        check=True,
    )
    archives = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        raise SystemExit(f"pip did not fetch the llama-cpp-python {version} sdist into {into}")
    return archives[0]


def build(version: str = DEFAULT_VERSION, jobs: int = 2) -> Path:
    """Return the cached `llama-server` of `version`, building it first when it is missing."""
    target = binary_path(version)
    if target.exists():
        return target
    print(
        f"building llama-server from llama-cpp-python {version}'s vendored llama.cpp "
        f"(slow: ~200 compile steps) -> {target}",
        file=sys.stderr,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        work = Path(tmp)
        archive = _download_sdist(version, work)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        source = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        build_dir = work / "build"
        subprocess.run(
            [
                "cmake",
                "-S",
                str(source),
                "-B",
                str(build_dir),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DGGML_NATIVE=ON",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DLLAMA_BUILD_SERVER=ON",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
            ],
            check=True,
        )
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
            check=True,
        )
        built = next(p for p in build_dir.rglob("llama-server") if p.is_file())
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(target)  # atomic: a half-copied binary is never taken for a build
    print(f"built {target}", file=sys.stderr, flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print(build(args.version, args.jobs))


if __name__ == "__main__":
    main()
