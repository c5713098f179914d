"""`--quantization gguf`'s parts: a GGUF tensor's blocks as read (exactly gguf's own
dequantization), q/k's row order, fused linears, and the AVX2 kernels against fp32."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from deepseek_runtime.model import gguf_kernel
from deepseek_runtime.model.gguf_weights import (
    DENSE_ROWS,
    BlockLinear,
    Blocks,
    _joined,
    _rotary_order,
    read_blocks,
)

KINDS = ("Q4_0", "Q4_1", "Q8_0")


def gguf_tensor(kind: str, rows: int = 48, cols: int = 96, seed: int = 0) -> SimpleNamespace:
    """What GGUFReader gives for a quantized tensor: its type and raw blocks, one row each."""
    weight = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    kind_enum = GGMLQuantizationType[kind]
    return SimpleNamespace(tensor_type=kind_enum, data=quants.quantize(weight, kind_enum))


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_dequantize_exactly_as_gguf_does(kind: str) -> None:
    tensor = gguf_tensor(kind)
    blocks = read_blocks(tensor)
    assert blocks is not None
    want = quants.dequantize(tensor.data, tensor.tensor_type)
    assert torch.equal(blocks.dequantized(), torch.from_numpy(want))


def test_other_tensor_types_are_not_kept() -> None:
    f32 = SimpleNamespace(tensor_type=GGMLQuantizationType.F32, data=np.zeros((4, 32), "f4"))
    assert read_blocks(f32) is None


@pytest.fixture(params=sorted(gguf_kernel.INSTRUCTION_SETS))
def instruction_set(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Each build of the kernels this CPU can run (AVX2 always; AVX-512 VNNI where present)."""
    isa = str(request.param)
    if isa == "avx512-vnni" and not gguf_kernel._cpu_flags() >= gguf_kernel.AVX512_VNNI:
        pytest.skip("this CPU has no AVX-512 VNNI")
    monkeypatch.setenv("DEEPSEEK_GGUF_KERNEL", isa)
    gguf_kernel.library.cache_clear()
    yield isa
    gguf_kernel.library.cache_clear()  # the next user builds for its own environment


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [1, 3, 16, 37])
@pytest.mark.parametrize("cols", [160, 192])  # 5 blocks (a pair left over), 6 (pairs only)
def test_kernel_matches_the_fp32_matmul_of_the_same_weights(
    kind: str, rows: int, cols: int, instruction_set: str
) -> None:
    """x is quantized to int8 per block of 32 inside the kernel (as llama.cpp does): close to
    fp32, not equal. Every tile size (8, 4, 2, 1 rows) is exercised by these row counts."""
    blocks = read_blocks(gguf_tensor(kind, rows=40, cols=cols, seed=rows))
    assert blocks is not None
    x = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows))
    want = x @ blocks.dequantized().T
    got = BlockLinear(blocks)(x)
    assert got.shape == want.shape
    # Per-block int8 rounding of x: about 1/254 of each block's peak per element.
    assert (got - want).abs().max() <= 0.02 * want.abs().max()
    gguf_kernel.set_threads(2)  # the OpenMP split over output columns gives the same sums
    try:
        assert torch.equal(BlockLinear(blocks)(x), got)
    finally:
        gguf_kernel.set_threads(0)


def test_an_unknown_kernel_build_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_GGUF_KERNEL", "sse2")
    with pytest.raises(gguf_kernel.KernelUnavailableError, match="'sse2' is not one of avx2"):
        gguf_kernel.instruction_set()


def test_rotary_order_undoes_llama_cpp_permutation_as_transformers_does() -> None:
    heads, rows = 3, 24
    weights = np.arange(rows * 2).reshape(rows, 2)
    dim = rows // heads // 2  # transformers' _reverse_permute_weights, written out
    want = weights.reshape(heads, dim, 2, 2).swapaxes(2, 1).reshape(weights.shape)
    assert np.array_equal(weights[_rotary_order(rows, heads).numpy()], want)


def test_fused_linears_join_rows_of_one_type_only() -> None:
    a, b = read_blocks(gguf_tensor("Q4_1", 8)), read_blocks(gguf_tensor("Q4_1", 4, seed=1))
    assert a is not None and b is not None
    joined = _joined([a, b])
    assert isinstance(joined, Blocks) and joined.d.shape == (12, 3)
    assert torch.equal(joined.dequantized(), torch.cat([a.dequantized(), b.dequantized()]))
    assert _joined([a, read_blocks(gguf_tensor("Q8_0", 4))]) is None
    assert _joined([a, read_blocks(gguf_tensor("Q4_0", 4))]) is None  # Q4_0 has no m
    assert _joined([a, None]) is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_prefill_runs_a_float_gemm_on_the_blocks_exact_weights(kind: str) -> None:
    """From DENSE_ROWS rows the weight is dequantized for torch's GEMM: fp32 activations, so
    this is the fp32 matmul of the file's weights (no int8 rounding of x)."""
    blocks = read_blocks(gguf_tensor(kind, rows=40, cols=192))
    assert blocks is not None
    x = torch.randn(DENSE_ROWS + 5, 192, generator=torch.Generator().manual_seed(3))
    want = x @ blocks.dequantized().T
    assert torch.allclose(BlockLinear(blocks)(x), want, rtol=1e-5, atol=1e-5)
    # One row fewer than the dense path's first: the integer kernel, close but not equal.
    got = BlockLinear(blocks)(x[: DENSE_ROWS - 1])
    assert not torch.allclose(got, want[: DENSE_ROWS - 1], rtol=1e-5, atol=1e-5)
    assert (got - want[: DENSE_ROWS - 1]).abs().max() <= 0.02 * want.abs().max()
