"""The CPU fast paths give exactly what the library calls they replace give."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepseek_runtime.runner import cpu_kernels
from deepseek_runtime.runner.cpu_kernels import InputMajorLinear, argmax_rows, tune_output_head


@pytest.mark.parametrize("vocab", [7, 128, 129, 640, 1000, 32000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_argmax_rows_is_torch_argmax(vocab: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(9, vocab, generator=gen).to(dtype)
    assert torch.equal(argmax_rows(logits), logits.argmax(dim=-1))


def test_argmax_rows_ties_nan_and_inf_follow_torch() -> None:
    logits = torch.zeros(5, 1000)
    logits[0, [3, 700]] = 5.0  # a tie across blocks: the first index wins
    logits[1, [130, 131]] = 5.0  # a tie inside one block
    logits[2, 999] = float("nan")  # NaN counts as the maximum
    logits[2, 10] = float("inf")
    logits[3] = float("-inf")  # every entry -inf: index 0, like torch
    logits[4, 998] = float("inf")
    expected = logits.argmax(dim=-1)
    assert argmax_rows(logits).tolist() == expected.tolist() == [3, 130, 999, 0, 998]


def test_argmax_rows_takes_a_non_contiguous_slice() -> None:
    logits = torch.randn(4, 3, 500)[:, -1, :]  # what a forward's last position looks like
    assert not logits.is_contiguous()
    assert torch.equal(argmax_rows(logits), logits.argmax(dim=-1))


@pytest.mark.parametrize("bias", [False, True])
def test_input_major_linear_matches_nn_linear(bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 1000, bias=bias)
    swapped = InputMajorLinear(linear)
    x = torch.randn(3, 2, 64)
    with torch.inference_mode():
        torch.testing.assert_close(swapped(x), linear(x))
    assert torch.equal(swapped.weight, linear.weight) and swapped.weight_t.is_contiguous()


class TinyLM(nn.Module):
    """Just enough of a PreTrainedModel: input embeddings, an lm_head and its accessors."""

    def __init__(self, tied: bool, vocab: int = 2000, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.embed.weight

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, head: nn.Module) -> None:
        self.lm_head = head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.embed(ids))  # type: ignore[no-any-return]


@pytest.mark.parametrize("tied", [False, True])
def test_tune_swaps_when_faster_and_the_logits_stay(
    tied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = TinyLM(tied)
    ids = torch.tensor([[1, 5, 1999]])
    with torch.inference_mode():
        before = model(ids)
    embedding = model.embed.weight
    monkeypatch.setattr(cpu_kernels, "MIN_GAIN", 0.0)  # the other layout always "wins"
    assert tune_output_head(model, rows=4)
    assert isinstance(model.lm_head, InputMajorLinear)
    assert model.embed.weight is embedding  # the embedding keeps its own [vocab, hidden] layout
    with torch.inference_mode():
        torch.testing.assert_close(model(ids), before)


def test_tune_keeps_the_layout_that_is_not_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    model = TinyLM(tied=False)
    head = model.lm_head
    monkeypatch.setattr(cpu_kernels, "MIN_GAIN", float("inf"))
    assert not tune_output_head(model, rows=4)
    assert model.lm_head is head


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao
def test_tune_leaves_quantized_and_unusual_heads_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.ao.quantization import quantize_dynamic

    monkeypatch.setattr(cpu_kernels, "MIN_GAIN", 0.0)
    quantized = quantize_dynamic(TinyLM(tied=False), {nn.Linear}, dtype=torch.qint8)
    head = quantized.lm_head
    assert not tune_output_head(quantized, rows=4)
    assert quantized.lm_head is head
    assert not tune_output_head(nn.Sequential(nn.Linear(4, 4)), rows=4)  # no accessors at all


def test_tune_says_what_a_tied_copy_costs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Tied(TinyLM):
        def get_input_embeddings(self) -> nn.Module:
            return self.embed

    monkeypatch.setattr(cpu_kernels, "MIN_GAIN", 0.0)
    with caplog.at_level("INFO", logger=cpu_kernels.__name__):
        assert tune_output_head(Tied(tied=True, vocab=8192, hidden=128), rows=2)
    assert "4 MiB more (tied to the embeddings)" in caplog.text


def test_tune_keeps_the_head_when_there_is_no_room(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_room(self: InputMajorLinear, linear: nn.Linear) -> None:
        raise RuntimeError("DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr(InputMajorLinear, "__init__", no_room)
    model = TinyLM(tied=False)
    head = model.lm_head
    assert not tune_output_head(model, rows=4)
    assert model.lm_head is head
