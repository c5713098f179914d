"""Images for the real node, built with buildah (no Docker engine) and loaded into containerd.

Nothing is pulled: the pause image is a static binary `FROM scratch`, the Debian base comes from
mmdebstrap with this machine's own apt sources, and the project's images build from their own
Dockerfiles with that base passed as `BASE_IMAGE` (a user's build keeps the default). Every tag
is a hash of what goes into the image, so an unchanged tree is never rebuilt and a changed one
gets a new tag. buildah's store lives in the cache outside the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .config import HACK, REPO, ClusterError, log

CACHE = Path(os.environ.get("DEEPSEEK_CACHE") or Path.home() / ".cache" / "deepseek-operator")
STORE = CACHE / "buildah"
SUITE = "bookworm"  # Debian 12: glibc 2.36 >= the 2.35 the nvidia-pytriton wheel needs
# python3-venv for the Dockerfiles' venvs; libpython3.11 is the shared library Triton's Python
# backend stub loads by name (the CUDA base gets it from python3-dev).
BASE_PACKAGES = ("python3", "python3-venv", "libpython3.11", "ca-certificates")
# What the Dockerfiles COPY: the tag of a project image hashes exactly these.
PROJECT_FILES = ("pyproject.toml", "README.md", "operator", "runtime")
SKIP = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def buildah(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["buildah", "--root", str(STORE / "root"), "--runroot", str(STORE / "run")]
    argv += ["--storage-driver", "overlay", *args]
    result = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "")[-3000:] if quiet else ""
        raise ClusterError(f"buildah {' '.join(args[:2])} failed ({result.returncode}): {detail}")
    return result


def present(ref: str) -> bool:
    argv = ["buildah", "--root", str(STORE / "root"), "--runroot", str(STORE / "run")]
    argv += ["--storage-driver", "overlay", "inspect", "--type", "image", ref]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def files_under(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.endswith(".egg-info"))
            found += [Path(root) / n for n in sorted(names) if not n.endswith(".pyc")]
    return found


def content_tag(paths: Iterable[Path], *extra: str) -> str:
    """A short hash of file names and contents (relative to the repository) plus `extra`."""
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for path in files_under(paths):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def timed(what: str, ref: str) -> float:
    log(f"building {ref} ({what})")
    return time.monotonic()


def pause_image() -> str:
    source = HACK / "images" / "pause.c"
    ref = f"localhost/deepseek-pause:{content_tag([source])}"
    if present(ref):
        return ref
    started = timed("static pause binary FROM scratch", ref)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "pause"
        subprocess.run(["gcc", "-static", "-Os", "-o", str(binary), str(source)], check=True)
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("copy", container, str(binary), "/pause")
            buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container)
            buildah("commit", "--quiet", container, ref)
        finally:
            buildah("rm", container)
    log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return ref


def apt_sources() -> list[str]:
    """This machine's own Debian sources, so the base comes from wherever its apt does."""
    sources = Path("/etc/apt/sources.list.d")
    found = sorted(str(p) for p in sources.glob("*.sources")) if sources.is_dir() else []
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and any(
        line.strip().startswith("deb ") for line in legacy.read_text().splitlines()
    ):
        found.append(str(legacy))
    if not found:
        raise ClusterError("no apt sources on this machine (/etc/apt/sources.list*)")
    return found


def debian_base() -> str:
    sources = apt_sources()
    texts = [Path(s).read_text() for s in sources]
    ref = f"localhost/deepseek-debian-base:{SUITE}-{content_tag([], SUITE, *BASE_PACKAGES, *texts)}"
    if present(ref):
        return ref
    started = timed(f"mmdebstrap {SUITE} with {', '.join(BASE_PACKAGES)}", ref)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        argv = [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
        ]
        argv += [
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
        ]
        subprocess.run([*argv, SUITE, str(rootfs), *sources], check=True)
        container = buildah("from", "scratch").stdout.strip()
        try:
            buildah("add", container, str(rootfs), "/")
            buildah("config", "--cmd", '["/bin/bash"]', container)
            buildah("commit", "--quiet", container, ref)
        finally:
            buildah("rm", container)
    log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return ref


# Not copied: the project itself (the Dockerfile's own `pip install` adds it) and pip (the
# image's venv has its own, with its entry points).
OWN = ("deepseek_operator", "__editable__", "_deepseek_operator", "pip")


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise ClusterError(f"no site-packages under {venv}: run `make install`")
    return found[0]


def runtime_dependencies(base: str, venv: Path) -> str:
    """A base with /opt/venv holding the project venv's packages (torch, transformers, Triton,
    the SmolLM2 GGUF), copied from the venv: no network and no resolver, the image runs exactly
    what the tests ran, and the multi-GB layer is built once per set of versions. The runtime
    Dockerfile's own `pip install` then finds every requirement met and adds only the project.
    (Debian's python3 is 3.11 like the venv's: the same wheels.)"""
    site = site_packages(venv)
    dists = sorted(d.name for d in site.glob("*.dist-info") if not d.name.startswith(OWN))
    ref = f"localhost/deepseek-runtime-deps:{content_tag([], base, site.parent.name, *dists)}"
    if present(ref):
        return ref
    started = timed(f"{len(dists)} packages copied from {venv}", ref)
    target = f"/opt/venv/lib/{site.parent.name}/site-packages"
    # Anchored: only top-level entries (an unanchored `pip*` would drop transformers/pipelines).
    excludes = " ".join(f"--exclude='./{own}*'" for own in OWN)
    script = (
        f"python3 -m venv /opt/venv && tar -C /venv-site --exclude=__pycache__ --anchored "
        f"{excludes} -cf - . | tar -C {target} -xf -"
    )
    container = buildah("from", base).stdout.strip()
    try:
        buildah(
            "run", "--isolation", "chroot", "-v", f"{site}:/venv-site:ro",
            container, "--", "sh", "-c", script,
        )  # fmt: skip
        buildah("commit", "--quiet", container, ref)
    finally:
        buildah("rm", container)
    log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return ref


def project_image(name: str, dockerfile: Path, base: str) -> str:
    """`buildah bud` of the project's own Dockerfile with BASE_IMAGE swapped."""
    paths = [REPO / p for p in PROJECT_FILES]
    ref = f"localhost/{name}:{content_tag([dockerfile, *paths], base)}"
    if present(ref):
        return ref
    started = timed(f"{dockerfile.relative_to(REPO)} FROM {base}", ref)
    buildah(
        "bud",
        "--isolation", "chroot",
        "--layers=false",
        "--build-arg", f"BASE_IMAGE={base}",
        "-v", "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        "-f", str(dockerfile),
        "-t", ref,
        str(REPO),
    )  # fmt: skip
    log(f"built {ref} in {time.monotonic() - started:.0f}s")
    return ref


def load(ref: str, containerd_socket: Path) -> None:
    """Into containerd's k8s.io namespace, streamed: buildah writes a docker-archive into a
    FIFO that `ctr images import -` reads, so the multi-GB runtime image is never written to
    disk as an archive (an oci-archive stages a copy, then a tar of it: three times the I/O,
    and gzip would cost minutes on two cores). Skipped when containerd already has the tag."""
    ctr = ["ctr", "--address", str(containerd_socket), "--namespace", "k8s.io"]
    listed = subprocess.run(
        [*ctr, "images", "list", "--quiet", f"name=={ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    if ref in listed.stdout.split():
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        fifo = Path(tmp) / "image.fifo"
        os.mkfifo(fifo)
        # The shell opens the FIFO for ctr: the open waits until buildah starts writing.
        importer = subprocess.Popen(
            ["sh", "-c", 'exec "$@" < "$0"', str(fifo), *ctr, "images", "import", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            buildah("push", "--quiet", "--disable-compression", ref, f"docker-archive:{fifo}:{ref}")
        except ClusterError:
            with contextlib.suppress(OSError):  # unblock the reader if buildah never opened it
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            importer.kill()
            raise
        finally:
            output = importer.communicate(timeout=900)[0]
        if importer.returncode != 0:
            raise ClusterError(f"ctr images import of {ref} failed: {output.decode()[-2000:]}")
    log(f"loaded {ref} into containerd in {time.monotonic() - started:.0f}s")


def build_all(venv: Path) -> dict[str, str]:
    """Every image the real node runs, by role."""
    STORE.mkdir(parents=True, exist_ok=True)
    # One build at a time per store: two checkouts building at once (CI beside a working tree)
    # would remove each other's working containers below.
    with open(STORE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        buildah("rm", "--all")  # working containers a killed build left behind
        base = debian_base()
        return {
            "pause": pause_image(),
            "operator": project_image("deepseek-operator", REPO / "operator" / "Dockerfile", base),
            "runtime": project_image(
                "deepseek-runtime",
                REPO / "runtime" / "Dockerfile",
                runtime_dependencies(base, venv),
            ),
        }
