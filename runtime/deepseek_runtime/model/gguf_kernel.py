"""The block matmuls of gguf_blocks.c, compiled on first use and called through ctypes.

The C file is built once per source and flags with the C compiler on PATH ($CC, else cc) into
$XDG_CACHE_HOME/deepseek-runtime/ (a second start loads the cached library in milliseconds).
It needs an x86 CPU with AVX2 and FMA; where that or a compiler is missing, the mode fails at
start-up with a clear error (UnsupportedQuantizationError) instead of running slowly.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gguf_blocks.c")
FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC")


class KernelUnavailableError(RuntimeError):
    """The block kernel cannot be built or run on this machine (the message says why)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepseek-runtime"


def _build(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", str(built)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KernelUnavailableError(
                f"compiling {SOURCE.name} with {compiler} failed: {result.stderr.strip()[-600:]}"
            )
        os.replace(built, target)  # atomic: a concurrent start sees the whole file or none


@cache
def library() -> ctypes.CDLL:
    """The compiled kernels (built on the first call of the process if not cached)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        raise KernelUnavailableError(
            f"the GGUF block kernels need an x86 CPU with AVX2 and FMA; this one offers "
            f"{capability}"
        )
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise KernelUnavailableError(
            f"the GGUF block kernels are compiled on first use and no C compiler ({compiler}) "
            "is on PATH: install gcc, or set CC"
        )
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = _cache_dir() / f"gguf_blocks-{digest}.so"
    if not target.is_file():
        _build(compiler, target)
    lib = ctypes.CDLL(str(target))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.q4_1_mm.argtypes = [ptr, i64, i64, ptr, ptr, ptr, i64, ptr, ptr, ptr, ptr, ctypes.c_int]
    lib.q8_0_mm.argtypes = [ptr, i64, i64, ptr, ptr, i64, ptr, ptr, ptr, ptr, ctypes.c_int]
    lib.q4_1_mm.restype = lib.q8_0_mm.restype = None
    return lib


def _call(name: str, x: torch.Tensor, weight: list[torch.Tensor], n: int) -> torch.Tensor:
    """Run kernel `name` on x [R, K] and a weight's tensors; the output is y [R, n]."""
    x = x.contiguous()
    rows, k = x.shape
    y = torch.empty(rows, n, dtype=torch.float32)
    xq = torch.empty(rows, k, dtype=torch.int8)  # scratch: x as int8 blocks, their scales, sums
    scales = torch.empty(2, rows, k // 32, dtype=torch.float32)
    getattr(library(), name)(
        x.data_ptr(), rows, k, *(t.data_ptr() for t in weight), n, y.data_ptr(),
        xq.data_ptr(), scales[0].data_ptr(), scales[1].data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return y


def q4_1_mm(x: torch.Tensor, qs: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x [R, K] fp32 times the Q4_1 weight (qs [N, K/32, 16] uint8, d and m [N, K/32])^T."""
    return _call("q4_1_mm", x, [qs, d, m], qs.shape[0])


def q8_0_mm(x: torch.Tensor, qs: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """x [R, K] fp32 times the Q8_0 weight (qs [N, K/32, 32] int8, d [N, K/32])^T."""
    return _call("q8_0_mm", x, [qs, d], qs.shape[0])
