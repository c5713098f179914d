"""The kernels of gguf_blocks.c, compiled on first use and called through ctypes.

The C file is built once per source and flags with the C compiler on PATH ($CC, else cc) into
$XDG_CACHE_HOME/deepseek-runtime/ (a second start loads the cached library in milliseconds),
for the widest instruction set this CPU runs: AVX2 + FMA, or AVX-512 with VNNI (block pairs
through 512-bit registers; measured 1.25-1.3x the AVX2 build at 1-16 rows on the same machine).
Without AVX2 or a compiler the mode fails at start-up with a clear error
(UnsupportedQuantizationError) instead of running slowly.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gguf_blocks.c")
FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC")
# Per instruction set: AVX2 + FMA everywhere; block pairs through AVX-512 VNNI where the CPU has
# it (gguf_blocks.c's WIDE path). DEEPSEEK_GGUF_KERNEL=avx2 forces the narrower build.
INSTRUCTION_SETS = {
    "avx2": ("-mavx2", "-mfma"),
    "avx512-vnni": ("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vnni"),
}
AVX512_VNNI = frozenset({"avx512f", "avx512bw", "avx512_vnni"})  # /proc/cpuinfo's names


class KernelUnavailableError(RuntimeError):
    """The block kernel cannot be built or run on this machine (the message says why)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepseek-runtime"


def _build(compiler: str, flags: tuple[str, ...], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", str(built)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KernelUnavailableError(
                f"compiling {SOURCE.name} with {compiler} failed: {result.stderr.strip()[-600:]}"
            )
        os.replace(built, target)  # atomic: a concurrent start sees the whole file or none


def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def instruction_set() -> str:
    """The kernels' build: DEEPSEEK_GGUF_KERNEL if set, else the widest this CPU runs."""
    forced = os.environ.get("DEEPSEEK_GGUF_KERNEL", "")
    if forced and forced not in INSTRUCTION_SETS:
        raise KernelUnavailableError(
            f"DEEPSEEK_GGUF_KERNEL={forced!r} is not one of {', '.join(INSTRUCTION_SETS)}"
        )
    if forced == "avx512-vnni" and not _cpu_flags() >= AVX512_VNNI:
        raise KernelUnavailableError("DEEPSEEK_GGUF_KERNEL=avx512-vnni on a CPU without it")
    return forced or ("avx512-vnni" if _cpu_flags() >= AVX512_VNNI else "avx2")


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
    flags = (*FLAGS, *INSTRUCTION_SETS[instruction_set()])
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    target = _cache_dir() / f"gguf_blocks-{digest}.so"
    if not target.is_file():
        _build(compiler, flags, target)
    lib = ctypes.CDLL(str(target))
    i64, ptr, f32, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_int
    lib.gguf_linear.argtypes = [ptr, ptr, i64, ptr, i32, ptr, i32]
    lib.gguf_norm_linear.argtypes = [ptr, ptr, i64, ptr, f32, ptr, ptr, i32]
    lib.gguf_mlp.argtypes = [ptr, ptr, ptr, i64, ptr, f32, ptr, ptr, i32]
    lib.gguf_rope.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr]
    lib.gguf_dequantize.argtypes = [ptr, ptr, i32]
    for name in ("gguf_linear", "gguf_norm_linear", "gguf_mlp", "gguf_rope", "gguf_dequantize"):
        getattr(lib, name).restype = None
    return lib


class Weight(ctypes.Structure):
    """blocks_t: a weight [n, k] in blocks, by its tensors' data pointers (the caller keeps the
    tensors alive: BlockLinear holds both)."""

    _fields_ = [("n", ctypes.c_int64), ("k", ctypes.c_int64), ("qs", ctypes.c_void_p),
                ("d", ctypes.c_void_p), ("m", ctypes.c_void_p)]  # fmt: skip


class _Quantized(ctypes.Structure):
    """qx_t: scratch for activations quantized to int8 blocks."""

    _fields_ = [("q", ctypes.c_void_p), ("d", ctypes.c_void_p), ("s", ctypes.c_void_p)]


def weight(qs: torch.Tensor, d: torch.Tensor, m: torch.Tensor | None) -> Weight:
    """The kernel's view of one weight's blocks (qs, d and m contiguous, m None for q8_0)."""
    n, groups = d.shape
    return Weight(n, groups * 32, qs.data_ptr(), d.data_ptr(), 0 if m is None else m.data_ptr())


class _Scratch(threading.local):
    """Grow-only buffers per thread: a decode step calls the kernels ~100 times, and fresh
    tensors for each call cost as much as a small kernel."""

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, count: int, dtype: torch.dtype) -> torch.Tensor:
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < count:
            buffer = self.buffers[name] = torch.empty(max(count, 1 << 16), dtype=dtype)
        return buffer[:count]


_scratch = _Scratch()
_threads = 0  # 0: torch's thread count


def set_threads(count: int) -> None:
    """Threads the kernels split their output columns over (0: torch.get_num_threads())."""
    global _threads
    _threads = max(0, count)


def threads() -> int:
    """torch's threads unless set_threads() says otherwise: `--torch-threads` sets both.

    The kernels run on torch's OpenMP runtime (torch's libgomp carries the soname the compiled
    library asks for), whose workers spin a while between parallel regions. Measured on this
    2-core VM, decode steps of the embedded default: 2 threads vs 1 took 0.69x the time at 1
    row and 0.62x at 16 rows when the machine was otherwise idle, but 4-40x the time while
    other work kept the cores busy, and with passive waits (OMP_WAIT_POLICY=PASSIVE) 1.2x
    even idle (waking a sleeping vCPU for each of ~90 kernels a step costs more than it
    saves). So the default stays the engine's (every core but one), and a box whose cores the
    server has to itself can give it all of them with `--torch-threads`.
    """
    return _threads or torch.get_num_threads()


def _quantized(rows: int, width: int) -> _Quantized:
    groups = rows * width // 32
    q = _scratch.take("q", rows * width, torch.int8)
    scales = _scratch.take("scales", 2 * groups, torch.float32)
    return _Quantized(q.data_ptr(), scales.data_ptr(), scales[groups:].data_ptr())


def _rows(x: torch.Tensor, width: int) -> torch.Tensor:
    if x.dtype != torch.float32 or not x.is_contiguous() or x.shape[-1] != width:
        raise ValueError(f"expected contiguous float32 rows of {width}, got {x.dtype} "
                         f"{tuple(x.shape)}")  # fmt: skip
    return x


def linear(w: Weight, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x [..., k] W^T -> [..., n]; with `out`, added into it (out += x W^T) and returned."""
    rows = _rows(x, w.k).numel() // w.k
    y = torch.empty(*x.shape[:-1], w.n) if out is None else _rows(out, w.n)
    library().gguf_linear(ctypes.byref(w), x.data_ptr(), rows, y.data_ptr(), out is not None,
                          ctypes.byref(_quantized(rows, w.k)), threads())  # fmt: skip
    return y


def norm_linear(w: Weight, x: torch.Tensor, norm: torch.Tensor, eps: float) -> torch.Tensor:
    """rms_norm(x, norm, eps) W^T, in one call."""
    rows = _rows(x, w.k).numel() // w.k
    y = torch.empty(*x.shape[:-1], w.n)
    quantized = _quantized(rows, w.k)
    library().gguf_norm_linear(ctypes.byref(w), x.data_ptr(), rows, norm.data_ptr(), eps,
                               y.data_ptr(), ctypes.byref(quantized), threads())  # fmt: skip
    return y


def mlp(gate_up: Weight, down: Weight, x: torch.Tensor, norm: torch.Tensor, eps: float) -> None:
    """x += down(silu(gate) * up), [gate | up] = rms_norm(x) gate_up^T: in place, one call."""
    rows = _rows(x, gate_up.k).numel() // gate_up.k
    hidden = _scratch.take("mlp", rows * gate_up.n, torch.float32)
    quantized = _quantized(rows, max(gate_up.k, down.k))
    library().gguf_mlp(ctypes.byref(gate_up), ctypes.byref(down), x.data_ptr(), rows,
                       norm.data_ptr(), eps, hidden.data_ptr(), ctypes.byref(quantized),
                       threads())  # fmt: skip


def rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> None:
    """Llama's rotary embedding in place on the first `heads` heads of each row of qkv."""
    dim = cos.shape[-1]
    rows = qkv.numel() // qkv.shape[-1]
    # [1, length, dim] tables (positions shared by the batch) broadcast to every row.
    cos, sin = (_rows(t.expand(*qkv.shape[:-1], dim).contiguous(), dim) for t in (cos, sin))
    if cos.numel() != rows * dim or heads * dim > qkv.shape[-1]:
        raise ValueError(f"rotary tables {tuple(cos.shape)} do not match q/k {tuple(qkv.shape)}")
    library().gguf_rope(_rows(qkv, qkv.shape[-1]).data_ptr(), rows, qkv.shape[-1], heads, dim,
                        cos.data_ptr(), sin.data_ptr())  # fmt: skip


def dequantized(w: Weight) -> torch.Tensor:
    """The weight as fp32 [n, k], in this thread's scratch (valid until its next call)."""
    out = _scratch.take("dense", w.n * w.k, torch.float32).view(w.n, w.k)
    library().gguf_dequantize(ctypes.byref(w), out.data_ptr(), threads())
    return out
