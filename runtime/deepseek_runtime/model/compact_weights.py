"""int8 weights for the compact model (compact.py): `--quantization int8` on CPU, Llama family.

Measured on this box (AVX2, no VNNI) at 1-16 rows, fbgemm's packed int8 linear
(torch.ops.quantized.linear_dynamic) is 2-4.5x faster than the fp32 matmul of the same
SmolLM2 shapes (the lm_head [49152, 576]: 7 ms against 20 ms at one row), while
torch._int_mm has no fast CPU path here (4-13x slower than fp32). So:

- weights: int8, one scale per output row (per channel), packed once for fbgemm;
- activations: quantized per token. fbgemm quantizes a whole input with one scale, so each
  row is first divided by its own absolute maximum and the output row multiplied back (a
  linear map commutes with that), which makes its one scale a per-token one;
- SmoothQuant (Xiao et al., 2023): a few activation channels are far larger than the rest,
  which one int8 scale per token cannot hold. Per input channel j, s_j = max|X_j|^a /
  max|W_j|^(1-a) from a few fixed calibration texts moves that range into the weights:
  X / s goes into the int8 input, W * s into the int8 weight, and 1/s is folded into what
  produces X (the preceding RMSNorm weight; for down_proj, the up_proj rows), so it costs
  nothing at run time;
- o_proj stays float: its input (the attention output) has no norm to fold a scale into,
  and quantizing it cost the most agreement for the least time.

Not exact: greedy top-1 agrees with fp32 on ~84% of tokens (bench/cpu_quality.py), and the
model still answers the same facts; that is why it is its own mode and not the default.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deepseek_runtime.model.compact import CompactCausalLM

SMOOTHING_ALPHA = 0.5
# fbgemm's 7-bit activation mode (reduce_range) guards its int16 pair sums against saturation.
# Full 8-bit agreed a little better with fp32 on one AVX2 box (92% against 86% top-1), but on an
# AMD EPYC (AVX-512 VNNI) it saturated into nonsense (SmolLM2 lost "Paris"); 7-bit answers
# right on both, so the mode that is safe on every x86 CPU is the one used.
REDUCE_RANGE = True
# Fixed calibration texts: prose, a chat turn, code, a list and numbers, so the activation
# maxima cover the kinds of input the demo model is asked about.
CALIBRATION_TEXTS = (
    "The capital of France is Paris. It lies on the Seine and is known for its museums, "
    "its cafes and the Eiffel Tower, built for the World's Fair of 1889.",
    "<|im_start|>user\nWhat is the boiling point of water at sea level?<|im_end|>\n"
    "<|im_start|>assistant\nWater boils at 100 degrees Celsius (212 F) at sea level.<|im_end|>",
    "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, "
    "a + b\n    return a\n\nprint([fibonacci(i) for i in range(10)])",
    "Shopping list: 2 kg of apples, 500 g of flour, 12 eggs, 1 litre of milk, butter, sugar, "
    "and a jar of honey for the weekend.",
    "In 1969, Apollo 11 landed on the Moon. Neil Armstrong and Buzz Aldrin walked on the "
    "surface while Michael Collins orbited above; they returned to Earth on July 24.",
)


class Int8Linear(nn.Module):
    """y = x W^T (+ b) with W in int8 (per-row scales) and x quantized per token."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        weight = weight.detach().float()
        rows = weight.shape[0]
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
        with warnings.catch_warnings():  # torch's quantized tensors are deprecated, not gone
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            zeros = torch.zeros(rows, dtype=torch.long)
            q = torch.quantize_per_channel(weight, scales.double(), zeros, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(q, None)
        self.in_features, self.out_features = int(weight.shape[1]), rows
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        # Every row scaled to max |x| = 1: fbgemm's one scale per input is then per token.
        peak = flat.abs().amax(dim=-1, keepdim=True).clamp(min=1e-6)
        out = torch.ops.quantized.linear_dynamic(flat / peak, self._packed, REDUCE_RANGE) * peak
        if self.bias is not None:
            out = out + self.bias
        return out.view(*x.shape[:-1], self.out_features)


def _input_peaks(model: CompactCausalLM, tokenizer: Any) -> dict[nn.Module, torch.Tensor]:
    """Per input channel, the largest |activation| entering each linear over the texts."""
    peaks: dict[nn.Module, torch.Tensor] = {}

    def record(module: nn.Module) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen = args[0].reshape(-1, args[0].shape[-1]).abs().amax(dim=0)
            peaks[module] = torch.maximum(peaks[module], seen) if module in peaks else seen

        return hook

    watched = [
        m for layer in model.decoder_layers() for m in (layer.qkv, layer.gate_up, layer.down)
    ]
    handles = [m.register_forward_pre_hook(record(m)) for m in (*watched, model.lm_head)]
    try:
        with torch.inference_mode():
            for text in CALIBRATION_TEXTS:
                ids = torch.tensor([tokenizer.encode(text)], dtype=torch.long)
                model(ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return peaks


def _smoothing(peak: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SmoothQuant's per-input-channel scale s (activations / s, weights * s)."""
    w_peak = weight.abs().amax(dim=0).clamp(min=1e-5)
    s = peak.clamp(min=1e-5) ** SMOOTHING_ALPHA / w_peak ** (1 - SMOOTHING_ALPHA)
    return s.clamp(min=1e-5)


def _weight(linear: nn.Module) -> torch.Tensor:
    weight = linear.weight
    assert isinstance(weight, torch.Tensor)
    return weight.detach()


def quantize_int8(model: CompactCausalLM, tokenizer: Any) -> CompactCausalLM:
    """Swap the compact model's qkv, gate_up, down and lm_head for smoothed int8 linears.

    New tensors throughout: the float ones stay shared with the transformers model.
    """
    peaks = _input_peaks(model, tokenizer)
    for layer in model.decoder_layers():
        s = _smoothing(peaks[layer.qkv], _weight(layer.qkv))
        layer.input_norm = nn.Parameter(layer.input_norm.detach() / s, requires_grad=False)
        layer.qkv = Int8Linear(_weight(layer.qkv) * s)
        gate_up = _weight(layer.gate_up)
        s = _smoothing(peaks[layer.gate_up], gate_up)
        layer.post_norm = nn.Parameter(layer.post_norm.detach() / s, requires_grad=False)
        gate_up = gate_up * s
        down = _weight(layer.down)
        s = _smoothing(peaks[layer.down], down)
        half = gate_up.shape[0] // 2  # rows [half:] are up_proj, whose output feeds down_proj
        gate_up[half:] /= s.unsqueeze(1)
        layer.gate_up = Int8Linear(gate_up)
        layer.down = Int8Linear(down * s)
    head = model.lm_head
    s = _smoothing(peaks[head], _weight(head))
    model.norm = nn.Parameter(model.norm.detach() / s, requires_grad=False)
    model.lm_head = Int8Linear(_weight(head) * s, getattr(head, "bias", None))
    return model
