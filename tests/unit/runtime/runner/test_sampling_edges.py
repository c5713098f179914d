"""Extreme sampling values must never poison a batch step (schemathesis found 1e-300)."""

from __future__ import annotations

import torch

from deepseek_runtime.engine.protocol import SamplingParams
from deepseek_runtime.runner.sampling import sample


def test_tiny_temperature_is_greedy() -> None:
    assert SamplingParams(temperature=1e-300).greedy
    assert SamplingParams(top_p=1e-300).greedy
    assert not SamplingParams(temperature=1e-4, top_p=1e-5).greedy


def test_tiny_top_p_keeps_the_top_token() -> None:
    logits = torch.tensor([[0.1, 3.0, 0.2, -1.0]])
    params = [SamplingParams(temperature=1.0, top_p=1e-300, seed=1)]
    assert sample(logits, params, [torch.Generator().manual_seed(1)]) == [1]


def test_a_batch_with_extremes_still_samples_every_row() -> None:
    logits = torch.randn(3, 50)
    params = [
        SamplingParams(temperature=1e-300),
        SamplingParams(top_p=1e-300, seed=3),
        SamplingParams(temperature=2.0, seed=4),
    ]
    out = sample(
        logits, params, [None, torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]
    )
    assert len(out) == 3 and all(0 <= t < 50 for t in out)
    assert out[0] == int(logits[0].argmax())
